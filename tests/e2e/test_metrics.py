"""/metrics as Prometheus scrapes it: only with its token, and counting exactly what was done, scraped during
a load of redemptions and other calls, from one server process and from two, whose samples add up (and a
killed process's counts stay while its gauges go)."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import shutil
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from giftcards.config import Settings
from tests.support.api import ADMIN_TOKEN, MASTER_KEY, create_merchant, issue_card, with_key
from tests.support.designs import create_design
from tests.support.gifts import buy, claimed
from tests.support.redemption import redeem
from tests.support.servers import LiveServer, ServerProcess
from tests.support.terminals import Terminal, till_in_new_store, unknown_code

METRICS_TOKEN = "test-metrics-token-0123456789abcdef"
SCRAPE = {"Authorization": f"Bearer {METRICS_TOKEN}"}
CONCURRENT_REDEMPTIONS = 50

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@pytest.fixture
def metered(settings: Settings) -> Iterator[LiveServer]:
    """A server with GIFTCARDS_METRICS_TOKEN set (the `server` fixture's has none)."""
    live = LiveServer(dataclasses.replace(settings, metrics_token=METRICS_TOKEN)).start()
    yield live
    live.stop()


async def test_metrics_are_served_only_with_their_token(metered: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=metered.url) as client:
        merchant = await create_merchant(client, "Scraped")
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": "Bearer " + "x" * len(METRICS_TOKEN)}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        assert (await client.get("/metrics", headers=merchant.headers)).status_code == 401
        basic = {"Authorization": f"Basic {METRICS_TOKEN}"}
        assert (await client.get("/metrics", headers=basic)).status_code == 401
        answer = await client.get("/metrics", headers=SCRAPE)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse(answer.text)
    assert (
        value(samples, "giftcards_http_request_duration_seconds_count", operation="metrics", status="401")
        >= 4
    )
    assert value(samples, "giftcards_outbox_query_ok") == 1


async def test_without_a_token_setting_there_is_no_metrics_endpoint(client: httpx.AsyncClient) -> None:
    assert (await client.get("/metrics", headers=SCRAPE)).status_code == 404


def operation_ids(document: dict[str, Any]) -> Callable[[str, str], str]:
    """The operationId of a request, found as the router finds it: literal paths before templated ones."""
    templates = sorted(
        (
            (path.count("{"), re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), method.upper(), op)
            for path, ops in document["paths"].items()
            for method, op in ops.items()
        ),
        key=lambda t: t[0],
    )

    def find(method: str, path: str) -> str:
        return next(op["operationId"] for _, p, m, op in templates if m == method and p.match(path))

    return find


@dataclasses.dataclass
class Load:
    """What the test did, counted as the service should count it."""

    requests: Counter[tuple[str, str]] = dataclasses.field(default_factory=Counter)  # (method, path, status)
    redemptions: Counter[str] = dataclasses.field(default_factory=Counter)  # outcome -> answers


async def do_the_load(client: httpx.AsyncClient, db: asyncpg.Connection, load: Load) -> list[Samples]:
    merchant = await create_merchant(client, "Metrics")
    design = await create_design(client, merchant)
    gifts = [await buy(client, merchant, design["id"]) for _ in range(2)]
    await claimed(client, gifts[0]["link"])
    cards = [await issue_card(client, merchant, 10_000) for _ in range(5)]
    batch = await client.post(
        "/v1/card_batches", json={"count": 10, "amount": 500}, headers=with_key(merchant)
    )
    assert batch.status_code == 201, batch.text
    till = await till_in_new_store(client, merchant, "manager")
    thief = await till_in_new_store(client, merchant, "clerk")

    async def spend(i: int) -> None:
        card = cards[i % len(cards)]
        answer = await redeem(client, till.headers, {"code": card["code"], "amount": 100}, key=f"load-{i}")
        assert answer.status_code == 201, answer.text
        load.redemptions["ok"] += 1

    scrapes: list[Samples] = []

    async def scrape_meanwhile() -> None:
        for _ in range(5):
            answer = await client.get("/metrics", headers=SCRAPE)
            assert answer.status_code == 200
            scrapes.append(parse(answer.text))
            await asyncio.sleep(0.02)

    await asyncio.gather(scrape_meanwhile(), *(spend(i) for i in range(CONCURRENT_REDEMPTIONS)))

    again = await redeem(client, till.headers, {"code": cards[0]["code"], "amount": 100}, key="load-0")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    load.redemptions["ok"] += 1
    for _ in range(2):
        overdrawn = await redeem(client, till.headers, {"code": cards[1]["code"], "amount": 1_000_000})
        assert overdrawn.json()["code"] == "insufficient_funds"
        load.redemptions["insufficient_funds"] += 1
    await guess(client, till, 3, load)
    await guess(client, thief, 10, load)
    locked = await redeem(client, thief.headers, {"code": unknown_code(), "amount": 100})
    assert locked.status_code == 429
    load.redemptions["rate_limited"] += 1

    await db.execute(
        """INSERT INTO wechat_outbox (merchant_id, card_id, entry_kind, amount, balance, currency, created_at)
           VALUES ($1, $2, 'sync', 0, 10000, 'CNY', now() - interval '1 hour')""",
        merchant.id,
        cards[4]["id"],
    )
    return scrapes


async def guess(client: httpx.AsyncClient, till: Terminal, times: int, load: Load) -> None:
    for _ in range(times):
        wrong = await redeem(client, till.headers, {"code": unknown_code(), "amount": 100})
        assert wrong.json()["code"] == "invalid_code", wrong.text
        load.redemptions["invalid_code"] += 1


async def check_counts(
    samples: Samples,
    load: Load,
    operation_of: Callable[[str, str], str],
    db: asyncpg.Connection,
    workers: int,
) -> None:
    expected: Counter[tuple[str, str]] = Counter()
    for (method, path, status), count in load.requests.items():
        expected[(operation_of(method, path), status)] += count
    counted = {
        (dict(labels)["operation"], dict(labels)["status"]): v
        for labels, v in series(samples, "giftcards_http_request_duration_seconds_count").items()
    }
    assert counted.pop(("readyz", "200"), 0) >= 1  # the start's readiness checks, not counted here
    assert counted == expected
    check_labels_tell_no_secret(samples)

    redeemed = await db.fetchval("SELECT -sum(amount) FROM ledger_entries WHERE kind = 'redeem'")
    assert redeemed == CONCURRENT_REDEMPTIONS * 100
    assert value(samples, "giftcards_redeemed_minor_units_total", currency="CNY") == redeemed
    outcomes = {dict(k)["outcome"]: v for k, v in series(samples, "giftcards_redemptions_total").items()}
    assert outcomes == load.redemptions
    sent = sum(load.redemptions.values())
    assert value(samples, "giftcards_redemption_batch_size_sum") == sent
    statements = value(samples, "giftcards_redemption_batch_size_count")
    assert sent / 32 <= statements <= sent
    assert value(samples, "giftcards_failed_attempts_total", limit="terminal") == 13
    assert value(samples, "giftcards_lockouts_total", limit="terminal") == 1

    assert (
        value(samples, "giftcards_cards_issued_total")
        == await db.fetchval("SELECT count(*) FROM cards")
        == 17
    )
    claimed_gifts = await db.fetchval("SELECT count(*) FROM gifts WHERE state = 'claimed'")
    assert value(samples, "giftcards_gifts_claimed_total") == claimed_gifts == 1

    assert value(samples, "giftcards_server_processes") == workers
    assert value(samples, "giftcards_db_pool_waiting") == 0
    assert 0 <= value(samples, "giftcards_db_pool_in_use") <= workers * 10
    assert value(samples, "giftcards_outbox_query_ok") == 1
    assert value(samples, "giftcards_outbox_depth", outbox="wechat", state="pending") == 1
    assert value(samples, "giftcards_outbox_depth", outbox="wechat", state="parked") == 0
    assert 3600 <= value(samples, "giftcards_outbox_oldest_age_seconds", outbox="wechat") < 3700


LABELS = {"operation", "status", "outcome", "currency", "limit", "outbox", "state", "le"}


def check_labels_tell_no_secret(samples: Samples) -> None:
    """Labels are names from short lists: no path, id, code or token among them."""
    labels = {pair for _, pairs in samples for pair in pairs}
    assert {name for name, _ in labels} <= LABELS
    for name, text in labels:
        assert re.fullmatch(r"[a-z_]+|[A-Z]{3}|\d{3}|[\d.e+Inf]+", text), (name, text)
        assert not text.startswith(("card_", "gift_", "gk_", "gt_", "mer_")), (name, text)


def server_env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "GIFTCARDS_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode(),
        "GIFTCARDS_ADMIN_TOKEN": ADMIN_TOKEN,
        "GIFTCARDS_METRICS_TOKEN": METRICS_TOKEN,
        "GIFTCARDS_RUN_WORKER": "false",
    }


def server_workers(parent: int) -> list[int]:
    """The uvicorn worker processes of `giftcards serve` (multiprocessing's spawned children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


BUSINESS = (
    "giftcards_redeemed_minor_units_total",
    "giftcards_redemptions_total",
    "giftcards_redemption_batch_size_sum",
    "giftcards_redemption_batch_size_count",
    "giftcards_cards_issued_total",
    "giftcards_gifts_claimed_total",
    "giftcards_failed_attempts_total",
    "giftcards_lockouts_total",
)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_a_scrape_during_load_counts_exactly_what_was_done(
    workers: int, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"  # where `serve` makes its metrics directory (TMPDIR)
    temporary.mkdir()
    env = {**server_env(database_url), "TMPDIR": str(temporary)}
    server = ServerProcess(env, log_path=tmp_path / "serve.log", options=("--workers", str(workers)))
    server.start(timeout=60)
    assert server.proc is not None
    (directory,) = temporary.iterdir()
    load = Load()

    async def note(response: httpx.Response) -> None:
        load.requests[(response.request.method, response.request.url.path, str(response.status_code))] += 1

    try:
        limits = httpx.Limits(max_connections=CONCURRENT_REDEMPTIONS + 10)
        async with httpx.AsyncClient(
            base_url=server.url, timeout=30, limits=limits, event_hooks={"response": [note]}
        ) as client:
            operation_of = operation_ids((await client.get("/openapi.json")).json())
            during = await do_the_load(client, db, load)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=SCRAPE) as scraper:
            after = parse((await scraper.get("/metrics")).text)
            await check_counts(after, load, operation_of, db, workers)
            redeemed = [value(samples, "giftcards_redemption_batch_size_sum") for samples in [*during, after]]
            assert len(during) == 5 and redeemed == sorted(redeemed), "scrapes during the load went back"
            if workers > 1:
                await check_each_worker_counted_its_share(server.proc.pid, directory, after, tmp_path)
                await check_a_killed_worker_is_forgotten_but_its_counts_stay(
                    server.proc.pid, directory, after, scraper
                )
            await check_the_pool_is_seen_idle_again(scraper)
    finally:
        assert server.terminate() == 0
    assert not directory.exists(), "the metrics directory outlived the server"


async def check_the_pool_is_seen_idle_again(scraper: httpx.AsyncClient) -> None:
    """Each process samples its pool every second: soon after the load none of its connections is taken."""
    for _ in range(50):
        samples = parse((await scraper.get("/metrics")).text)
        if value(samples, "giftcards_db_pool_in_use") == 0:
            break
        await asyncio.sleep(0.1)
    assert value(samples, "giftcards_db_pool_in_use") == 0
    assert value(samples, "giftcards_db_pool_waiting") == 0


def requests_counted(directory: Path) -> float:
    """The requests the metric files in `directory` count, read as a scrape reads them."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    samples = parse(generate_latest(registry).decode())
    return sum(series(samples, "giftcards_http_request_duration_seconds_count").values())


async def check_each_worker_counted_its_share(
    parent: int, directory: Path, samples: Samples, tmp_path: Path
) -> None:
    """Both processes served part of the load, and the scrape added up both."""
    shares = []
    for pid in server_workers(parent):
        alone = tmp_path / f"worker-{pid}"
        alone.mkdir()
        for file in directory.glob(f"*_{pid}.db"):
            shutil.copy(file, alone / file.name)
        shares.append(requests_counted(alone))
    assert len(shares) == 2 and all(share > 0 for share in shares), shares
    total = sum(series(samples, "giftcards_http_request_duration_seconds_count").values())
    assert sum(shares) == total + 1  # and the scrape that read them


async def check_a_killed_worker_is_forgotten_but_its_counts_stay(
    parent: int, directory: Path, before: Samples, scraper: httpx.AsyncClient
) -> None:
    victim, survivor = server_workers(parent)
    os.kill(victim, signal.SIGKILL)
    replacements: set[int] = set()
    for _ in range(300):  # uvicorn starts another in its place
        await asyncio.sleep(0.1)
        replacements = set(server_workers(parent)) - {survivor, victim}
        if replacements:
            break
    assert replacements, "no worker replaced the killed one"
    for _ in range(300):
        now = parse((await scraper.get("/metrics")).text)
        if (
            value(now, "giftcards_server_processes") == 2
            and len(list(directory.glob("gauge_livesum_*"))) == 2
        ):
            break
        await asyncio.sleep(0.1)
    assert value(now, "giftcards_server_processes") == 2
    assert not (directory / f"gauge_livesum_{victim}.db").exists(), "the killed worker's gauges still count"
    assert (directory / f"counter_{victim}.db").exists(), "the killed worker's counts were dropped"
    for name in BUSINESS:
        assert series(now, name) == series(before, name), name

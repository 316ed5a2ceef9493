"""A merchant's WeChat that trickles its answers, or redirects them, cannot stop other merchants' tills.

The merchant's WeChat base URL points at a real server on 127.0.0.1 that answers one byte a second: faster
than any per-read timeout notices (requests' 5 s, the outbox's 2 s), so only an overall deadline ends the
call. Meanwhile another merchant redeems at its till and calls its API. Every WeChat call must end by the
deadline (GIFTCARDS_WECHAT_TIMEOUT, 2 s here) with a problem, holding no pooled connection and no
transaction meanwhile, and taking at most the merchant's turns (2) of connections to WeChat; the other
merchant's answers stay 2xx and fast. A base URL that answers 302 must not send the server anywhere.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from giftcards.config import Settings
from giftcards.core import ids
from tests.support.api import Merchant, issue_card, with_key
from tests.support.servers import LiveServer, eventually
from tests.support.terminals import Terminal, create_store, new_terminal, till_in_new_store
from tests.wechat.conftest import CALLBACK_TOKEN, LOGO, Delivery, Wallet, open_wallet
from tests.wechat_standin import WeChatStandin

DEADLINE = 2.0  # GIFTCARDS_WECHAT_TIMEOUT in these tests
SLACK = 3.0  # for the database steps around a call on a loaded machine: the deadline itself is exact
TRICKLE = 1.0  # seconds between bytes of a trickling answer
TRICKLED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 52\r\n\r\n"
    b'{"errcode":0,"access_token":"slow","expires_in":7200}'
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The worker runs inside the server, on its pool, as `giftcards serve` runs it by default. A warm
    # pool, as a serving process has: no connection is opened in the middle of a measurement.
    return replace(settings, wechat_timeout=DEADLINE, pool_min_size=settings.pool_max_size, run_worker=True)


class RawServer:
    """An HTTP server on 127.0.0.1 that writes bytes as it is told, counting the connections it holds."""

    def __init__(self, answer: Callable[[asyncio.StreamWriter, asyncio.Task[None]], Awaitable[None]]) -> None:
        self.answer = answer
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"

    async def start(self) -> RawServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        self._writers.add(writer)
        closed: asyncio.Task[None] | None = None
        try:
            await reader.readuntil(b"\r\n\r\n")  # the request's head; its body is read below with the rest
            closed = asyncio.create_task(_until_eof(reader))
            await self.answer(writer, closed)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if closed is not None:
                closed.cancel()
            self.open -= 1
            self._writers.discard(writer)
            writer.transport.abort()


async def _until_eof(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


async def trickle(writer: asyncio.StreamWriter, closed: asyncio.Task[None]) -> None:
    """One byte every TRICKLE seconds, until the client hangs up."""
    for byte in TRICKLED:
        writer.write(bytes([byte]))
        await writer.drain()
        done, _ = await asyncio.wait([closed], timeout=TRICKLE)
        if done:
            return


@pytest_asyncio.fixture
async def trickler(server: LiveServer) -> AsyncIterator[RawServer]:
    """Set up after the service, so torn down before it: whatever still listens to a trickle is let go."""
    running = await RawServer(trickle).start()
    yield running
    await running.stop()


@dataclass
class Till:
    """Another merchant's till, with a card to redeem from, a fen at a time."""

    client: httpx.AsyncClient
    terminal: Terminal
    card: dict[str, Any]
    statuses: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    async def redeem(self) -> None:
        started = time.perf_counter()
        r = await self.client.post(
            "/v1/redemptions", json={"code": self.card["code"], "amount": 1}, headers=self.terminal.keyed()
        )
        self.seconds.append(time.perf_counter() - started)
        self.statuses.append(r.status_code)
        looked_up = await self.client.get(
            f"/v1/cards/{self.card['id']}", headers=self.terminal.merchant.headers
        )
        self.statuses.append(looked_up.status_code)

    def measured(self) -> Till:
        """A fresh record, from here on."""
        return replace(self, statuses=[], seconds=[])


async def open_till(client: httpx.AsyncClient, merchant: Merchant) -> Till:
    terminal = await till_in_new_store(client, merchant, redeem_limit=50_000)
    return Till(client, terminal, await issue_card(client, merchant, 1_000_000))


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[math.ceil(0.99 * len(ordered)) - 1]


@dataclass
class Watch:
    """What the service holds while a merchant's WeChat trickles, sampled: pooled connections in use, and
    transactions left idle (open across a wait) for longer than half a second."""

    pool: asyncpg.Pool
    db: asyncpg.Connection
    in_use: list[int] = field(default_factory=list)
    idle_in_transaction: list[int] = field(default_factory=list)

    async def sample(self) -> None:
        self.in_use.append(self.pool.get_size() - self.pool.get_idle_size())
        self.idle_in_transaction.append(
            await self.db.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND state = 'idle in transaction'
                      AND now() - state_change > interval '0.5 seconds'"""
            )
        )


async def redeem_while(till: Till, watch: Watch, busy: Callable[[], bool]) -> None:
    while busy():
        await till.redeem()
        await watch.sample()


async def wechat_at(client: httpx.AsyncClient, merchant: Merchant, base_url: str) -> None:
    account = {"appid": "wx57a4d10000000002", "secret": "S" * 32, "callback_token": CALLBACK_TOKEN}
    r = await client.put(
        "/v1/wechat/account", json={**account, "base_url": base_url}, headers=merchant.headers
    )
    assert r.status_code == 200, r.text


async def timed(call: Awaitable[httpx.Response]) -> tuple[float, int | None, str | None]:
    started = time.monotonic()
    try:
        r = await call
    except httpx.TimeoutException:
        return time.monotonic() - started, None, None  # no answer at all
    return time.monotonic() - started, r.status_code, r.json().get("code")


async def test_ten_design_syncs_against_a_trickling_wechat_end_by_the_deadline_and_the_tills_go_on(
    client: httpx.AsyncClient,
    server: LiveServer,
    merchant: Merchant,
    other_merchant: Merchant,
    trickler: RawServer,
    db: asyncpg.Connection,
) -> None:
    till = await open_till(client, merchant)
    for _ in range(150):
        await till.redeem()
    idle = till.seconds
    assert set(till.statuses) == {200, 201}

    slow = other_merchant
    await wechat_at(client, slow, trickler.url)
    designs = ["default"]
    for n in range(4):
        designs.append(ids.new_id("dsn"))
        await db.execute(
            """INSERT INTO designs (merchant_id, id, name, occasion, background_color, accent_color,
                                    text_color, currency, denominations)
               VALUES ($1, $2, $3, 'birthday', '#aa0000', '#ffffff', '#000000', 'CNY', '{10000}')""",
            slow.id,
            designs[-1],
            f"礼品卡{n}",
        )

    # Ten syncs in flight all along, for three deadlines: each one that ends is sent again. They start a
    # tenth of a deadline apart, as a stream of calls would, not all in one instant.
    during = till.measured()
    watch = Watch(server.app.state.runtime.pool, db)
    answers: list[tuple[float, int | None, str | None]] = []
    window = time.monotonic() + 3 * DEADLINE

    async def keep_syncing(syncing: httpx.AsyncClient, design: str, delay: float) -> None:
        await asyncio.sleep(delay)
        while time.monotonic() < window:
            url = f"/v1/wechat/designs/{design}/sync"
            answers.append(await timed(syncing.post(url, json={"logo_url": LOGO}, headers=with_key(slow))))

    async def stream() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=4 * DEADLINE) as syncing:
            await asyncio.gather(
                *(keep_syncing(syncing, design, n * DEADLINE / 10) for n, design in enumerate(designs * 2))
            )

    syncs = asyncio.create_task(asyncio.to_thread(asyncio.run, stream()))
    await redeem_while(during, watch, lambda: time.monotonic() < window)
    await syncs

    print(
        f"\nmerchant B's redemptions: idle p99 {p99(idle) * 1000:.1f} ms over {len(idle)}, "
        f"during 10 trickling syncs p99 {p99(during.seconds) * 1000:.1f} ms over {len(during.seconds)}; "
        f"{len(answers)} syncs, each answered after {min(a[0] for a in answers):.2f}-"
        f"{max(a[0] for a in answers):.2f} s; "
        f"pool in use median {statistics.median(watch.in_use)} max {max(watch.in_use)}; "
        f"connections to the trickling WeChat at most {trickler.max_open}"
    )
    assert all(status in (200, 201) for status in during.statuses), sorted(set(during.statuses))
    assert p99(during.seconds) <= max(4 * p99(idle), 0.5)
    assert len(answers) >= 20
    for seconds, status, code in answers:
        assert (status, code) == (503, "wechat_unavailable")
        assert seconds < DEADLINE + SLACK
    assert trickler.max_open <= 2  # the merchant's turns
    assert max(watch.idle_in_transaction) == 0
    assert statistics.median(watch.in_use) <= 2
    await eventually(lambda: trickler.open == 0)  # every trickling answer was hung up on
    await eventually(lambda: watch.pool.get_size() == watch.pool.get_idle_size())


@pytest_asyncio.fixture
async def other_standin() -> AsyncIterator[WeChatStandin]:
    with WeChatStandin() as running:
        yield running


async def test_the_workers_deliveries_to_a_trickling_wechat_hold_nothing_and_others_are_delivered(
    client: httpx.AsyncClient,
    server: LiveServer,
    wallet: Wallet,
    other_merchant: Merchant,
    other_standin: WeChatStandin,
    delivery: Delivery,
    trickler: RawServer,
    db: asyncpg.Connection,
) -> None:
    slow = [await wallet.issue_in_wallet(5_000, f"o-slow{n}") for n in range(4)]
    fine = await open_wallet(client, other_merchant, other_standin, server)
    theirs = await fine.issue_in_wallet(50_000, "o-fine")
    store = await create_store(client, other_merchant, redeem_limit=50_000)
    till = Till(
        client,
        await new_terminal(client, other_merchant, store["id"]),
        {"id": theirs.id, "code": theirs.code},
    )
    for _ in range(100):
        await till.redeem()  # each one a wallet update for the service's own worker to deliver
    idle = till.seconds
    await delivery.drain()

    # The slow merchant's WeChat starts to trickle, its access_token still cached: each delivery goes
    # straight to card/generalcard/updateuser, and retries keep coming, as many at once as the worker lets.
    await db.execute(
        "UPDATE wechat_accounts SET base_url = $2 WHERE merchant_id = $1", wallet.merchant.id, trickler.url
    )
    await asyncio.gather(*(wallet.redeem(card, 100) for card in slow))
    during = till.measured()
    watch = Watch(server.app.state.runtime.pool, db)
    window = time.monotonic() + 3 * DEADLINE
    await redeem_while(during, watch, lambda: time.monotonic() < window)
    ledger = await fine.ledger_balance(theirs)
    # The other merchant's wallet shows its till's last redemption soon after, slow WeChat or not.
    await eventually(lambda: fine.in_wechat(theirs).balance == ledger, timeout=DEADLINE + SLACK)

    print(
        f"\nmerchant B's redemptions: idle p99 {p99(idle) * 1000:.1f} ms over {len(idle)}, while the worker "
        f"delivers to a trickling WeChat p99 {p99(during.seconds) * 1000:.1f} ms over {len(during.seconds)}; "
        f"{trickler.accepted} deliveries to the trickling WeChat, at most {trickler.max_open} at once"
    )
    assert all(status in (200, 201) for status in during.statuses), sorted(set(during.statuses))
    assert p99(during.seconds) <= max(4 * p99(idle), 0.5)
    assert max(watch.idle_in_transaction) == 0
    assert statistics.median(watch.in_use) <= 2
    assert trickler.accepted >= 1 and trickler.max_open <= 2  # never more at once than its turns
    tried = await db.fetch(
        """SELECT state, last_error FROM wechat_outbox
            WHERE merchant_id = $1 AND attempts > 0 AND entry_kind = 'redeem'""",
        wallet.merchant.id,
    )
    assert tried and all(row["state"] == "pending" for row in tried)
    assert all(row["last_error"].startswith("timed out") for row in tried)


async def test_a_base_url_that_redirects_sends_the_server_nowhere(
    client: httpx.AsyncClient, server: LiveServer, merchant: Merchant
) -> None:
    async def elsewhere(writer: asyncio.StreamWriter, _: asyncio.Task[None]) -> None:
        body = b'{"access_token":"from-elsewhere","expires_in":7200}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()

    async def redirect(writer: asyncio.StreamWriter, _: asyncio.Task[None]) -> None:
        location = f"{target.url}cgi-bin/token".encode()
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n" % location)
        await writer.drain()

    target = await RawServer(elsewhere).start()
    redirector = await RawServer(redirect).start()
    try:
        await wechat_at(client, merchant, redirector.url)
        synced = await client.post(
            "/v1/wechat/designs/default/sync", json={"logo_url": LOGO}, headers=with_key(merchant)
        )
        assert (redirector.accepted, target.accepted) == (1, 0)
        assert (synced.status_code, synced.json()["code"]) == (503, "wechat_unavailable")
        assert "redirect" in synced.json()["detail"]
    finally:
        await redirector.stop()
        await target.stop()

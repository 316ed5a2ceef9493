"""Things break: the server is killed mid-load, the database goes away, the server is asked to stop.
Every answered redemption is in the ledger, nothing is half-applied or applied twice, retries with the
same key finish the job exactly once, and the audit passes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.reliability.load import Load, check_ledger, prepare, retry_unanswered, server_env, start_server
from tests.support.database import ThrowawayCluster

INITIAL = 1_000_000


def audit(database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "giftcards.cli", "audit"],
        env={**server_env(database_url), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def record(artifacts: Path, name: str, figures: dict[str, object]) -> None:
    """The figures each breakage test saw, for the issue note (and printed with -s)."""
    print(name, json.dumps(figures))
    (artifacts / f"reliability-{name}.json").write_text(json.dumps(figures, indent=2))


async def run_for(load: Load, seconds: float) -> asyncio.Task[None]:
    task = asyncio.create_task(load.run())
    await asyncio.sleep(seconds)
    return task


@pytest.mark.slow
async def test_kill_minus_nine_mid_load_loses_nothing_and_applies_nothing_twice(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, artifacts: Path
) -> None:
    server = start_server(database_url, tmp_path / "server.log")
    try:
        load = await prepare(server.url, amount=INITIAL)
        task = await run_for(load, 1.5)
        server.kill()  # SIGKILL: no cleanup, in-flight requests are cut off
        await asyncio.sleep(0.3)
        load.stop.set()
        await task
        before_retry = dict(load.statuses())
        restarted = start_server(database_url, tmp_path / "server.log", port=server.port)
    finally:
        server.kill()
    try:
        retried = await retry_unanswered(load, restarted.url)
    finally:
        restarted.kill()
    figures = await check_ledger(db, load, INITIAL)
    result = audit(database_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert before_retry.get(201, 0) > 0 and before_retry.get(None, 0) > 0, before_retry
    record(
        artifacts,
        "kill9",
        {
            **figures,
            "answers_before_kill": {str(k): v for k, v in before_retry.items()},
            "retried": len(retried),
            "audit": result.stdout.strip(),
        },
    )


@pytest_asyncio.fixture
async def own_cluster() -> AsyncIterator[ThrowawayCluster]:
    cluster = ThrowawayCluster()
    await cluster.start()
    yield cluster
    await cluster.stop()


@pytest.mark.slow
async def test_a_database_outage_fails_fast_and_recovers_without_a_restart(
    own_cluster: ThrowawayCluster, tmp_path: Path, artifacts: Path
) -> None:
    database_url = own_cluster.dsn(await own_cluster.new_database())
    server = start_server(database_url, tmp_path / "server.log", GIFTCARDS_DB_TIMEOUT="1")
    try:
        load = await prepare(server.url, amount=INITIAL)
        task = await run_for(load, 1.0)
        before = len(load.attempts)
        own_cluster.cluster.stop()
        await asyncio.sleep(3)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            ready_during = (await client.get("/readyz")).status_code
            # Snapshots: the retries below reuse (and update) these attempts.
            down = [
                (a.status, dict(a.body or {}), a.seconds)
                for a in load.attempts[before:]
                if a.status is not None and a.status >= 500
            ]
            own_cluster.cluster.start()
            recovered_after = None
            for tick in range(200):
                await asyncio.sleep(0.1)
                if (await client.get("/readyz")).status_code == 200:
                    recovered_after = tick / 10
                    break
        await asyncio.sleep(1.0)
        load.stop.set()
        await task
        statuses = dict(load.statuses())
        unanswered = sum(1 for a in load.attempts if a.status is None)
        retried = await retry_unanswered(load, server.url)
    finally:
        server.kill()
    assert ready_during == 503
    assert unanswered == 0, "every request during the outage deserves an answer"
    assert down, "no request met the outage"
    assert {status for status, _, _ in down} == {503}
    assert {body.get("code") for _, body, _ in down} == {"database_unavailable"}
    slowest_failure = max(seconds for _, _, seconds in down)
    assert slowest_failure < 5, f"a request hung {slowest_failure:.1f}s during the outage"
    assert recovered_after is not None, "the service did not recover by itself"
    db = await asyncpg.connect(database_url)
    try:
        figures = await check_ledger(db, load, INITIAL)
    finally:
        await db.close()
    assert audit(database_url).returncode == 0
    record(
        artifacts,
        "db-outage",
        {
            **figures,
            "answers": {str(k): v for k, v in statuses.items()},
            "failed_fast_503": len(down),
            "slowest_503_s": round(slowest_failure, 3),
            "ready_again_after_s": recovered_after,
            "retried": len(retried),
            "unanswered": unanswered,
        },
    )


@pytest.mark.slow
async def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(
    database_url: str, db: asyncpg.Connection, tmp_path: Path, artifacts: Path
) -> None:
    server = start_server(database_url, tmp_path / "server.log")
    load = await prepare(server.url, amount=INITIAL)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        batch = asyncio.create_task(
            client.post(
                "/v1/card_batches", json={"count": 20_000, "amount": 100}, headers=load.merchant.headers
            )
        )
        task = await run_for(load, 0.4)
        server.proc.send_signal(15)  # type: ignore[union-attr]
        exit_code = await asyncio.to_thread(server.proc.wait, 60)  # type: ignore[union-attr]
        load.stop.set()
        await task
        batch_response = await batch
    statuses = dict(load.statuses())
    assert exit_code == 0
    assert batch_response.status_code == 201, batch_response.text
    assert (
        await db.fetchval("SELECT count(*) FROM cards WHERE batch_id = $1", batch_response.json()["id"])
        == 20_000
    )
    answered = [a for a in load.attempts if a.status is not None]
    assert answered and {a.status for a in answered} == {201}, statuses
    # What was answered is in the ledger; what was not (refused connections after shutdown) left nothing.
    keys = {r["idempotency_key"] for r in await db.fetch("SELECT idempotency_key FROM ledger_entries")}
    assert {a.key for a in answered} <= keys
    assert not {a.key for a in load.attempts if a.status is None} & keys
    record(
        artifacts,
        "sigterm",
        {"answers": {str(k): v for k, v in statuses.items()}, "exit_code": exit_code, "batch_cards": 20_000},
    )

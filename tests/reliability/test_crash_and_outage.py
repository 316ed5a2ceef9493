"""Things break: the server is killed mid-load, the database goes away, the server is asked to stop.
Every answered redemption is in the ledger, nothing is half-applied or applied twice, retries with the
same key finish the job exactly once, and the audit passes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from tests.reliability.load import Load, check_ledger, prepare, retry_unanswered, server_env, start_server
from tests.support.database import FAST_SETTINGS, ThrowawayCluster

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
    async with ThrowawayCluster() as cluster:
        yield cluster


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


KILLS = 20


def sigkill_postgres(cluster: ThrowawayCluster) -> int:
    """Kill the postmaster and every server process with SIGKILL, as the kernel's OOM killer or a lost
    machine would: no shutdown, connections cut mid-statement. Answers how many processes died."""
    postmaster = int((cluster.cluster.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(postmaster, signal.SIGSTOP)  # it forks no new backend while its children are looked for
    victims = [postmaster]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            # The command name (in parentheses) may hold spaces: the parent pid is the second field after it.
            if int(stat.read_text().rpartition(")")[2].split()[1]) == postmaster:
                victims.append(int(stat.parent.name))
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in victims):  # gone and reaped: a restart finds no owner
        assert time.monotonic() < deadline, "PostgreSQL processes outlived SIGKILL"
        time.sleep(0.01)
    return len(victims)


async def accepting(dsn: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await (await asyncpg.connect(dsn, timeout=2)).close()
            return
        except (OSError, asyncpg.PostgresError):
            assert time.monotonic() < deadline, "PostgreSQL did not come back after its restart"
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def crashable_cluster() -> AsyncIterator[ThrowawayCluster]:
    """A cluster of its own whose commits survive a crash of its processes: with synchronous_commit off, a
    commit answered before the WAL writer ran is lost with the server's memory. (fsync may stay off:
    the machine itself does not go down, so what was written to the kernel survives.)"""
    async with ThrowawayCluster(server_settings={**FAST_SETTINGS, "synchronous_commit": "on"}) as cluster:
        yield cluster


@pytest.mark.slow
async def test_postgres_killed_under_load_answers_every_redemption_503_or_2xx_never_500(
    crashable_cluster: ThrowawayCluster, tmp_path: Path, artifacts: Path
) -> None:
    log = tmp_path / "server.log"
    database_url = crashable_cluster.dsn(await crashable_cluster.new_database())
    server = start_server(database_url, log, GIFTCARDS_DB_TIMEOUT="1")
    killed = 0
    try:
        load = await prepare(server.url, amount=INITIAL)
        task = asyncio.create_task(load.run(workers=64))  # enough redemptions in flight to meet each kill
        for _ in range(KILLS):
            await asyncio.sleep(1.0)
            killed += await asyncio.to_thread(sigkill_postgres, crashable_cluster)
            await asyncio.sleep(1.0)
            await asyncio.to_thread(crashable_cluster.cluster.start)  # crash recovery, then accepting again
            await accepting(database_url)
        await asyncio.sleep(1.5)
        load.stop.set()
        await task
        statuses = dict(load.statuses())  # before the retries below overwrite what each attempt got
        retried = await retry_unanswered(load, server.url)
    finally:
        server.kill()
    figures = {
        "kills": KILLS,
        "processes_killed": killed,
        "answers": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "internal_client_errors_logged": log.read_text(errors="replace").count("cannot switch to state"),
        "retried": len(retried),
    }
    print("pg-sigkill", json.dumps(figures))
    assert statuses.get(503, 0) > 0 and statuses.get(201, 0) > 0, figures
    assert set(statuses) <= {201, 503}, figures  # never a 500, and every request answered
    db = await asyncpg.connect(database_url)
    try:
        figures.update(await check_ledger(db, load, INITIAL))  # each key applied once, after the retries
    finally:
        await db.close()
    assert audit(database_url).returncode == 0
    record(artifacts, "pg-sigkill", figures)

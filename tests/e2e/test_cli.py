"""The `giftcards` command as a user runs it: serve on the embedded database, restart, audit, migrate."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.api import ADMIN_TOKEN, MASTER_KEY
from tests.support.servers import ServerProcess


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "DATABASE_URL"))}
    return subprocess.run(
        [sys.executable, "-m", "giftcards.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def database_env(database_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "GIFTCARDS_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode(),
    }


def embedded_env(home: Path) -> dict[str, str]:
    """`serve` as a new user runs it: no DATABASE_URL, so the embedded database in `home`."""
    inherited = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**inherited, "GIFTCARDS_HOME": str(home), "GIFTCARDS_ADMIN_TOKEN": ADMIN_TOKEN}


def new_merchant_key(url: str, name: str) -> dict[str, str]:
    """The authorization header of a new merchant's API key."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    merchant = httpx.post(url + "/v1/merchants", json={"name": name}, headers=admin).json()
    return {"Authorization": f"Bearer {merchant['api_key']['secret']}"}


@pytest.mark.slow
def test_serve_starts_its_own_database_and_keeps_data_across_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = embedded_env(home)
    server = ServerProcess(env, log_path=tmp_path / "serve.log").start(timeout=90)
    try:
        key = new_merchant_key(server.url, "Persist")
        card = httpx.post(server.url + "/v1/cards", json={"amount": 4_200}, headers=key).json()
    finally:
        assert server.terminate() == 0
    assert not (home / "pgdata" / "postmaster.pid").exists(), "the embedded database was not shut down"
    assert (home / "master.key").stat().st_mode & 0o777 == 0o600
    again = ServerProcess(env, port=server.port, log_path=tmp_path / "serve.log").start(timeout=90)
    try:
        fetched = httpx.get(again.url + f"/v1/cards/{card['id']}", headers=key)
        assert fetched.status_code == 200 and fetched.json()["balance"] == 4_200
    finally:
        assert again.terminate() == 0


@pytest.mark.slow
def test_serve_with_two_worker_processes_spends_a_card_exactly_and_stops_cleanly(tmp_path: Path) -> None:
    """`serve --workers N` (measured in bench/README.md): the processes share one embedded database."""
    home = tmp_path / "home"
    server = ServerProcess(embedded_env(home), log_path=tmp_path / "serve.log", options=("--workers", "2"))
    server.start(timeout=90)
    try:
        key = new_merchant_key(server.url, "Two")
        card = httpx.post(server.url + "/v1/cards", json={"amount": 1_000}, headers=key).json()

        def redeem(attempt: int) -> int:
            with httpx.Client(base_url=server.url, headers=key, timeout=30) as client:  # a connection each
                return client.post(
                    "/v1/redemptions",
                    json={"code": card["code"], "amount": 100},
                    headers={"Idempotency-Key": f"two-workers-{attempt}"},
                ).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = sorted(pool.map(redeem, range(16)))
        fetched = httpx.get(server.url + f"/v1/cards/{card['id']}", headers=key).json()
    finally:
        assert server.terminate() == 0
    assert statuses == [201] * 10 + [402] * 6
    assert fetched["balance"] == 0
    assert not (home / "pgdata" / "postmaster.pid").exists(), "the embedded database was not shut down"


async def test_audit_exits_non_zero_on_a_mismatch(database_url: str, db: asyncpg.Connection) -> None:
    env = database_env(database_url)
    created = run_cli("create-merchant", "Audit Brand", env=env)
    assert created.returncode == 0 and "API key  gk_mer_" in created.stdout
    clean = run_cli("audit", env=env)
    assert clean.returncode == 0, clean.stderr
    assert "every balance equals the sum of its ledger" in clean.stdout
    merchant_id = await db.fetchval("SELECT id FROM merchants")
    from giftcards.core.sealing import Keyring
    from giftcards.stores.merchants import Principal
    from giftcards.value.cards import CardSpec, issue

    principal = Principal("api_key", "key_cli", merchant_id)
    card = await issue(db, Keyring(MASTER_KEY), principal, CardSpec(amount=700))
    await db.execute("SET session_replication_role = replica")
    await db.execute("UPDATE cards SET balance = 1 WHERE id = $1", card.id)
    await db.execute("SET session_replication_role = origin")
    broken = run_cli("audit", env=env)
    assert broken.returncode == 1
    assert "1 MISMATCH" in broken.stdout and card.id in broken.stdout


def test_migrate_reports_and_bad_settings_name_the_variable(database_url: str) -> None:
    done = run_cli("migrate", env=database_env(database_url))
    assert done.returncode == 0 and "0 migration(s) applied" in done.stdout
    bad = run_cli(
        "migrate",
        env={
            **database_env(database_url),
            "GIFTCARDS_POOL_MIN_SIZE": "lots",
            "GIFTCARDS_MASTER_KEY": "c2hvcnQ",
            "GIFTCARDS_TRUSTED_PROXIES": "10.0.0.0/8, 10.1.2.3/8",
        },
    )
    assert bad.returncode == 2
    assert "GIFTCARDS_TRUSTED_PROXIES: '10.1.2.3/8' is not an IP address or a CIDR network" in bad.stderr
    assert "GIFTCARDS_POOL_MIN_SIZE: must be a whole number" in bad.stderr
    assert "GIFTCARDS_MASTER_KEY: must decode to 32 bytes" in bad.stderr
    assert "Traceback" not in bad.stderr

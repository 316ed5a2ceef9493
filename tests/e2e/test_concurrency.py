"""Never spent twice: 100 concurrent redemptions of one card through two server processes."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from giftcards.value.audit import audit_balances
from tests.support.api import ADMIN_TOKEN, MASTER_KEY, Merchant, create_merchant, issue_card, with_key
from tests.support.servers import ServerProcess


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    env = {
        "DATABASE_URL": database_url,
        "GIFTCARDS_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode().rstrip("="),
        "GIFTCARDS_ADMIN_TOKEN": ADMIN_TOKEN,
        "GIFTCARDS_RUN_WORKER": "false",
        "GIFTCARDS_POOL_MAX_SIZE": "20",
    }
    servers = [ServerProcess(env, log_path=tmp_path / f"server{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.kill()


async def test_concurrent_redemptions_never_exceed_the_balance(
    two_servers: list[ServerProcess], db: asyncpg.Connection
) -> None:
    clients = [
        httpx.AsyncClient(base_url=s.url, timeout=30, limits=httpx.Limits(max_connections=60))
        for s in two_servers
    ]
    try:
        merchant: Merchant = await create_merchant(clients[0], "Hot Card Brand")
        card = await issue_card(clients[0], merchant, 10_000)
        rng = random.Random(11)
        amounts = [rng.randint(50, 300) for _ in range(100)]

        async def one(i: int) -> httpx.Response:
            return await clients[i % 2].post(
                "/v1/redemptions",
                json={"code": card["code"], "amount": amounts[i]},
                headers=with_key(merchant),
            )

        answers = await asyncio.gather(*(one(i) for i in range(100)))
    finally:
        for client in clients:
            await client.aclose()
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {201, 402}, statuses
    taken = sum(amounts[i] for i, a in enumerate(answers) if a.status_code == 201)
    assert 0 < taken <= 10_000
    assert statuses.count(402) > 0, "the balance should have run out: the test lost its point"
    balance = await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"])
    assert balance == 10_000 - taken
    ledger_sum = await db.fetchval("SELECT sum(amount) FROM ledger_entries WHERE card_id = $1", card["id"])
    assert ledger_sum == balance
    # Every refusal saw a balance too small for it at that moment.
    for i, answer in enumerate(answers):
        if answer.status_code == 402:
            assert answer.json()["balance"] < amounts[i]
    report = await audit_balances(db)
    assert report.ok and report.cards == 1


async def test_retries_of_one_redemption_through_both_processes_debit_once(
    two_servers: list[ServerProcess], db: asyncpg.Connection
) -> None:
    clients = [httpx.AsyncClient(base_url=s.url, timeout=30) for s in two_servers]
    try:
        merchant = await create_merchant(clients[0], "Retry Brand")
        card = await issue_card(clients[0], merchant, 5_000)
        headers = with_key(merchant)
        body = {"code": card["code"], "amount": 1_999}
        answers = await asyncio.gather(
            *(clients[i % 2].post("/v1/redemptions", json=body, headers=headers) for i in range(30))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 3_001

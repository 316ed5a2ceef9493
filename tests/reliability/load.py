"""A small redemption load for the breakage tests: every request keeps its idempotency key and outcome,
so that after a crash or an outage the test can retry exactly what was not answered and check the ledger."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from tests.support.api import ADMIN_TOKEN, MASTER_KEY, Merchant, activity_id, create_merchant, issue_card
from tests.support.servers import ServerProcess


@dataclass
class Attempt:
    key: str
    code: str
    card_id: str
    amount: int
    status: int | None = None  # None: no answer (connection lost, timed out)
    body: dict[str, object] | None = None
    seconds: float = 0.0


@dataclass
class Load:
    url: str
    merchant: Merchant
    cards: list[dict[str, object]]
    attempts: list[Attempt] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, workers: int = 12) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            await asyncio.gather(*(self._worker(client, i) for i in range(workers)))

    async def _worker(self, client: httpx.AsyncClient, index: int) -> None:
        n = 0
        while not self.stop.is_set():
            card = self.cards[(index + n * 7) % len(self.cards)]
            n += 1
            attempt = Attempt(str(uuid.uuid4()), str(card["code"]), str(card["id"]), 10 + (n % 90))
            self.attempts.append(attempt)
            await send(client, self.merchant, attempt)
            if attempt.status is None:
                await asyncio.sleep(0.05)  # the server is gone: do not spin

    def statuses(self) -> Counter[int | None]:
        return Counter(a.status for a in self.attempts)


async def send(client: httpx.AsyncClient, merchant: Merchant, attempt: Attempt) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/v1/redemptions",
            json={"code": attempt.code, "amount": attempt.amount},
            headers={**merchant.headers, "Idempotency-Key": attempt.key},
        )
    except httpx.HTTPError:
        attempt.status, attempt.body = None, None
    else:
        attempt.status, attempt.body = response.status_code, response.json()
    attempt.seconds = time.perf_counter() - started


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "GIFTCARDS_MASTER_KEY": base64.urlsafe_b64encode(MASTER_KEY).decode().rstrip("="),
        "GIFTCARDS_ADMIN_TOKEN": ADMIN_TOKEN,
        "GIFTCARDS_RUN_WORKER": "false",
        **extra,
    }


async def prepare(url: str, cards: int = 20, amount: int = 1_000_000) -> Load:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        merchant = await create_merchant(client, "Breakage Brand")
        issued = [await issue_card(client, merchant, amount) for _ in range(cards)]
    return Load(url, merchant, issued)


async def retry_unanswered(load: Load, url: str) -> list[Attempt]:
    """Send again, with the same key and body, everything that got no answer or a 5xx."""
    again = [a for a in load.attempts if a.status is None or a.status >= 500]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for attempt in again:
            await send(client, load.merchant, attempt)
    return again


async def check_ledger(db: asyncpg.Connection, load: Load, initial: int) -> dict[str, int]:
    """Every key is in the ledger exactly once, with its amount; every balance is initial minus its keys."""
    rows = await db.fetch(
        "SELECT idempotency_key, card_id, amount, id FROM ledger_entries WHERE kind = 'redeem' ORDER BY id"
    )
    by_key: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_key.setdefault(row["idempotency_key"], []).append(row)
    sent = {a.key: a for a in load.attempts}
    assert set(by_key) <= set(sent), "the ledger holds a redemption nobody sent"
    assert all(len(entries) == 1 for entries in by_key.values()), "a key was applied twice"
    for key, attempt in sent.items():
        assert attempt.status == 201, (attempt.status, attempt.body)
        (entry,) = by_key[key]
        assert (entry["card_id"], -entry["amount"]) == (attempt.card_id, attempt.amount)
        assert attempt.body is not None and attempt.body["id"] == activity_id(entry["id"])
    spent: Counter[str] = Counter()
    for attempt in load.attempts:
        spent[attempt.card_id] += attempt.amount
    balances = {r["id"]: r["balance"] for r in await db.fetch("SELECT id, balance FROM cards")}
    for card in load.cards:
        assert balances[str(card["id"])] == initial - spent[str(card["id"])]
    return {"sent": len(sent), "in_ledger": len(by_key)}


def start_server(database_url: str, log: Path, port: int | None = None, **extra: str) -> ServerProcess:
    return ServerProcess(server_env(database_url, **extra), port=port, log_path=log).start()

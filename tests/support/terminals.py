"""Stores and terminals as a client sets them up: helpers for the terminal, fast-path and browser tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from giftcards.value import codes
from tests.support.api import Merchant, activity_id


@dataclass(frozen=True)
class Terminal:
    id: str
    store: str
    token: str
    merchant: Merchant

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def keyed(self, key: str | None = None) -> dict[str, str]:
        return {**self.headers, "Idempotency-Key": key or str(uuid.uuid4())}


async def create_store(client: httpx.AsyncClient, merchant: Merchant, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/stores", json={"name": "Jing'an", **fields}, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_terminal(
    client: httpx.AsyncClient, merchant: Merchant, store_id: str, role: str = "clerk", label: str = "Till 1"
) -> dict[str, Any]:
    response = await client.post(
        "/v1/terminals", json={"store": store_id, "label": label, "role": role}, headers=merchant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def enroll(client: httpx.AsyncClient, code: str) -> httpx.Response:
    return await client.post("/v1/terminal/enroll", json={"code": code})


async def new_terminal(
    client: httpx.AsyncClient, merchant: Merchant, store_id: str, role: str = "clerk"
) -> Terminal:
    created = await create_terminal(client, merchant, store_id, role)
    enrolled = await enroll(client, created["enrollment"]["code"])
    assert enrolled.status_code == 201, enrolled.text
    return Terminal(created["id"], store_id, enrolled.json()["token"], merchant)


async def qr_payload(client: httpx.AsyncClient, merchant: Merchant, card_id: str) -> str:
    response = await client.get(f"/v1/cards/{card_id}/qr", headers=merchant.headers)
    assert response.status_code == 200, response.text
    return response.json()["payload"]  # type: ignore[no-any-return]


async def staff_log(client: httpx.AsyncClient, merchant: Merchant, **query: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/staff_log", params={"limit": 100, **query}, headers=merchant.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def backdate_redemption(
    db: asyncpg.Connection, terminal: Terminal, card_id: str, amount: int, *, days: int
) -> str:
    """A redemption this terminal made `days` ago (the ledger's chain and balance rules still apply)."""
    entry_id = await backdated_redemption(
        db, terminal.merchant.id, terminal.id, terminal.store, card_id, amount, days=days
    )
    return activity_id(entry_id)


async def backdated_redemption(
    db: asyncpg.Connection,
    merchant_id: str,
    terminal_id: str,
    store_id: str,
    card_id: str,
    amount: int,
    *,
    days: int,
) -> int:
    """The ledger entry of a redemption a terminal made `days` ago, written as the ledger's rules allow."""
    async with db.transaction():
        balance = await db.fetchval(
            "SELECT balance FROM cards WHERE merchant_id = $1 AND id = $2 FOR UPDATE", merchant_id, card_id
        )
        entry_id = await db.fetchval(
            """INSERT INTO ledger_entries (merchant_id, card_id, kind, amount, balance_after, currency,
                                           actor_type, actor_id, store_id, created_at)
               VALUES ($1, $2, 'redeem', $3, $4, 'CNY', 'terminal', $5, $6, now() - make_interval(days => $7))
               RETURNING id""",
            merchant_id,
            card_id,
            -amount,
            balance - amount,
            terminal_id,
            store_id,
            days,
        )
        await db.execute(
            "UPDATE cards SET balance = $3 WHERE merchant_id = $1 AND id = $2",
            merchant_id,
            card_id,
            balance - amount,
        )
    return int(entry_id)


def unknown_code() -> str:
    return codes.format_code(codes.generate_code())


async def till_in_new_store(
    client: httpx.AsyncClient, merchant: Merchant, role: str = "clerk", **store_fields: Any
) -> Terminal:
    """An enrolled till of its own new store (the store's limits from `store_fields`)."""
    store = await create_store(client, merchant, **store_fields)
    return await new_terminal(client, merchant, store["id"], role)

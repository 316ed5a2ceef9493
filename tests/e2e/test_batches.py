"""Bulk issuance: 10,000 cards in one request, written with COPY, exported with their codes."""

from __future__ import annotations

import json

import asyncpg
import httpx

from giftcards.value import codes
from giftcards.value.audit import audit_balances
from tests.support.api import Merchant, with_key


async def test_ten_thousand_cards_in_one_request(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/v1/card_batches",
        json={"count": 10_000, "amount": 20_000, "campaign": "spring-festival"},
        headers=with_key(merchant),
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert (batch["count"], batch["amount"], batch["currency"]) == (10_000, 20_000, "CNY")
    assert await db.fetchval("SELECT count(*) FROM cards WHERE batch_id = $1", batch["id"]) == 10_000
    assert (
        await db.fetchval(
            """SELECT count(*) FROM ledger_entries l JOIN cards c ON c.id = l.card_id
           WHERE c.batch_id = $1 AND l.kind = 'issue' AND l.amount = 20000""",
            batch["id"],
        )
        == 10_000
    )

    export = await client.get(f"/v1/card_batches/{batch['id']}/cards", headers=merchant.headers)
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert len(lines) == 10_000
    assert len({line["code"] for line in lines}) == 10_000
    assert all(codes.is_well_formed(line["code"]) and line["balance"] == 20_000 for line in lines)

    spent = await client.post(
        "/v1/redemptions", json={"code": lines[1234]["code"], "amount": 5_000}, headers=merchant.headers
    )
    assert spent.status_code == 201 and spent.json()["card"]["id"] == lines[1234]["id"]
    report = await audit_balances(db)
    assert report.ok and report.cards == 10_000


async def test_a_batch_beyond_the_limit_is_refused_and_stores_nothing(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    response = await client.post(
        "/v1/card_batches", json={"count": 100_001, "amount": 100}, headers=merchant.headers
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "count"
    assert await db.fetchval("SELECT count(*) FROM cards") == 0

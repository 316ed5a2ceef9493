"""A retried call does its work once: sequential and concurrent retries, conflicts, and stored refusals."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx

from tests.support.api import Merchant, issue_card, with_key


async def test_a_retry_with_the_same_key_returns_the_first_answer_and_debits_once(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    card = await issue_card(client, merchant, 10_000)
    headers = with_key(merchant)
    body = {"code": card["code"], "amount": 1_234}
    first = await client.post("/v1/redemptions", json=body, headers=headers)
    second = await client.post("/v1/redemptions", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert "idempotent-replayed" not in first.headers and second.headers["idempotent-replayed"] == "true"
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 8_766
    assert await db.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'redeem'") == 1


async def test_the_same_key_with_another_body_is_refused(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 10_000)
    headers = with_key(merchant)
    await client.post("/v1/redemptions", json={"code": card["code"], "amount": 100}, headers=headers)
    other = await client.post("/v1/redemptions", json={"code": card["code"], "amount": 200}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_conflict"


async def test_concurrent_requests_with_one_key_run_the_work_once(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    card = await issue_card(client, merchant, 10_000)
    headers = with_key(merchant)
    body = {"code": card["code"], "amount": 700}
    answers = await asyncio.gather(
        *(client.post("/v1/redemptions", json=body, headers=headers) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 19
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 9_300


async def test_a_refusal_is_replayed_too_and_keys_are_per_caller(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 100)
    key = str(uuid.uuid4())
    body = {"code": card["code"], "amount": 500}
    refused = await client.post("/v1/redemptions", json=body, headers=with_key(merchant, key))
    await client.post(f"/v1/cards/{card['id']}/load", json={"amount": 1_000}, headers=merchant.headers)
    replayed = await client.post("/v1/redemptions", json=body, headers=with_key(merchant, key))
    assert refused.status_code == replayed.status_code == 402
    assert (
        replayed.json() == refused.json() and replayed.headers["content-type"] == "application/problem+json"
    )
    # Another merchant's use of the same key is its own: it does not see the first outcome.
    foreign = await client.post("/v1/redemptions", json=body, headers=with_key(other_merchant, key))
    assert foreign.status_code == 404 and foreign.json()["code"] == "invalid_code"


async def test_issuing_with_a_key_creates_one_card(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    headers = with_key(merchant)
    first = await client.post("/v1/cards", json={"amount": 500}, headers=headers)
    second = await client.post("/v1/cards", json={"amount": 500}, headers=headers)
    assert first.json()["id"] == second.json()["id"]
    assert await db.fetchval("SELECT count(*) FROM cards") == 1


async def test_bad_keys_and_keys_on_reads_are_refused(client: httpx.AsyncClient, merchant: Merchant) -> None:
    card = await issue_card(client, merchant, 100)
    long_key = {**merchant.headers, "Idempotency-Key": "k" * 256}
    response = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 1}, headers=long_key
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"
    on_get = await client.get("/v1/cards", headers=with_key(merchant))
    assert on_get.status_code == 400


async def test_keys_are_kept_at_least_a_day(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    from giftcards.core import idempotency

    card = await issue_card(client, merchant, 1_000)
    headers = with_key(merchant)
    await client.post("/v1/redemptions", json={"code": card["code"], "amount": 1}, headers=headers)
    await db.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    assert await idempotency.purge_expired(db) == 0
    replay = await client.post("/v1/redemptions", json={"code": card["code"], "amount": 1}, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    await db.execute("UPDATE idempotency_keys SET created_at = now() - interval '49 hours'")
    assert await idempotency.purge_expired(db) == 1


async def test_stored_answers_are_sealed_so_a_dump_does_not_show_codes(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    headers = with_key(merchant)
    card = (await client.post("/v1/cards", json={"amount": 500}, headers=headers)).json()
    replay = (await client.post("/v1/cards", json={"amount": 500}, headers=headers)).json()
    assert replay["code"] == card["code"]
    stored = bytes(await db.fetchval("SELECT body FROM idempotency_keys"))
    code = card["code"]
    assert code.encode() not in stored and code.replace("-", "").encode() not in stored
    assert b"card_" not in stored  # nothing of the answer is readable

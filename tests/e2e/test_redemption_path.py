"""One redemption path: a body sent chunked is answered, recorded and replayed exactly as one sent with a
Content-Length, and every refusal (limits, revoked or unknown credentials, retired keys, unknown codes,
forged payloads, unreadable bodies) is the redemption statement's own, counted and logged by it.
"""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest

from tests.support.api import Merchant, admin_headers, issue_card
from tests.support.redemption import redeem
from tests.support.servers import LiveServer
from tests.support.terminals import Terminal, qr_payload, till_in_new_store

VOLATILE = re.compile(r'"(id|created_at|card)":("[^"]*"|\{[^}]*\})')


def shape(response: httpx.Response) -> str:
    return VOLATILE.sub(r'"\1":"…"', response.text)


@pytest.fixture
async def till(client: httpx.AsyncClient, merchant: Merchant) -> Terminal:
    return await till_in_new_store(client, merchant, redeem_limit=50_000)


async def test_a_chunked_body_is_answered_and_recorded_as_any_other(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
) -> None:
    answers = {}
    for chunked in (False, True):
        card = await issue_card(client, merchant, 10_000)
        body = {"qr_payload": await qr_payload(client, merchant, card["id"]), "amount": 2_500}
        taken = await redeem(client, till.headers, body, chunked=chunked, key=f"k-{chunked}")
        short = await redeem(client, till.headers, {**body, "amount": 9_000}, chunked=chunked)
        partial = await redeem(
            client, till.headers, {**body, "amount": 9_000, "allow_partial": True}, chunked=chunked
        )
        answers[chunked] = [(r.status_code, shape(r)) for r in (taken, short, partial)]
    assert answers[False] == answers[True]
    assert [status for status, _ in answers[False]] == [201, 402, 201]
    rows = await db.fetch(
        "SELECT action, outcome, amount, currency, (activity_id IS NULL) AS no_activity, code_last4, card_id "
        "FROM staff_log WHERE action = 'redeem' ORDER BY id"
    )
    plain_rows, chunked_rows = rows[:3], rows[3:]
    strip = [tuple(r)[:-1] for r in plain_rows], [tuple(r)[:-1] for r in chunked_rows]
    assert (
        strip[0]
        == strip[1]
        == [
            ("redeem", "ok", 2_500, "CNY", False, None),
            ("redeem", "insufficient_funds", 9_000, "CNY", True, None),
            ("redeem", "ok", 7_500, "CNY", False, None),
        ]
    )


async def test_a_key_replays_the_same_whatever_the_transport(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
) -> None:
    card = await issue_card(client, merchant, 10_000)
    body = {"code": card["code"], "amount": 1_000}
    first = await redeem(client, till.headers, body, key="same-key")
    again = await redeem(client, till.headers, body, key="same-key")
    again_chunked = await redeem(client, till.headers, body, key="same-key", chunked=True)
    assert first.status_code == again.status_code == again_chunked.status_code == 201
    assert first.json() == again.json() == again_chunked.json()
    assert again.headers["idempotent-replayed"] == again_chunked.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    conflict = await redeem(client, till.headers, {**body, "amount": 1}, key="same-key")
    assert conflict.status_code == 422 and conflict.json()["code"] == "idempotency_conflict"
    # And a key first sent chunked replays with a Content-Length.
    chunked_first = await redeem(client, till.headers, body, key="other-key", chunked=True)
    replay = await redeem(client, till.headers, body, key="other-key")
    assert replay.json() == chunked_first.json() and replay.headers["idempotent-replayed"] == "true"
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 8_000
    assert await db.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'redeem'") == 2


async def test_every_refusal_is_answered_counted_and_logged_by_the_statement(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    server: LiveServer,
    db: asyncpg.Connection,
) -> None:
    card = await issue_card(client, merchant, 100_000)
    payload = await qr_payload(client, merchant, card["id"])
    above_limit = await redeem(client, till.headers, {"qr_payload": payload, "amount": 50_001})
    assert above_limit.status_code == 403 and above_limit.json()["code"] == "store_limit_exceeded"

    unknown = await redeem(client, till.headers, {"code": "2345-6789-ABCD-EFGH-JKL2", "amount": 1})
    assert unknown.status_code == 404  # malformed or unknown: counted as a failed lookup
    failures = await db.fetchval(
        "SELECT count(*) FROM failed_attempts WHERE subject = $1", f"terminal:{till.id}"
    )
    assert failures == 1

    rotated = await client.post("/v1/qr_keys/rotate", headers=admin_headers())
    old_kid = next(
        k["kid"]
        for k in (await client.get("/v1/qr_keys", headers=admin_headers())).json()["data"]
        if k["kid"] != rotated.json()["kid"]
    )
    await client.post(f"/v1/qr_keys/{old_kid}/retire", headers=admin_headers())
    retired = await redeem(client, till.headers, {"qr_payload": payload, "amount": 1})
    assert retired.status_code == 404 and retired.json()["code"] == "invalid_qr_payload"

    await client.post(f"/v1/terminals/{till.id}/revoke", headers=merchant.headers)
    revoked = await redeem(client, till.headers, {"code": card["code"], "amount": 1})
    assert revoked.status_code == 401
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 100_000
    assert (
        await db.fetchval("SELECT count(*) FROM failed_attempts WHERE subject = $1", f"terminal:{till.id}")
        == 2
    )  # the unknown code and the retired key's payload; a limit is not a failed lookup
    logged = await db.fetch(
        "SELECT action, outcome, amount, code_last4 FROM staff_log "
        "WHERE terminal_id = $1 AND action <> 'enroll' ORDER BY id",
        till.id,
    )
    assert [tuple(r) for r in logged] == [
        ("redeem", "store_limit_exceeded", 50_001, None),
        ("redeem", "invalid_code", 1, "JKL2"),
        ("redeem", "invalid_qr_payload", 1, None),
        ("authenticate", "unauthenticated", None, None),
    ]


async def test_a_forged_payload_or_an_unreadable_body_is_answered_once_the_credential_is_known(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
) -> None:
    card = await issue_card(client, merchant, 10_000)
    payload = await qr_payload(client, merchant, card["id"])
    forged = payload[:-3] + ("AAA" if payload[-3:] != "AAA" else "BBB")
    for chunked in (False, True):
        refused = await redeem(client, till.headers, {"qr_payload": forged, "amount": 1}, chunked=chunked)
        assert refused.status_code == 404 and refused.json()["code"] == "invalid_qr_payload", refused.text
    assert (
        await db.fetchval("SELECT count(*) FROM failed_attempts WHERE subject = $1", f"terminal:{till.id}")
        == 2
    )

    unreadable = {"code": card["code"], "amount": "ten"}
    bad = await redeem(client, till.headers, unreadable, key="k-unreadable")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "amount", bad.text
    stranger = {"Authorization": f"Bearer {till.token[:-4]}XXXX"}
    assert (await redeem(client, stranger, unreadable)).status_code == 401
    assert (await redeem(client, {}, unreadable)).status_code == 401
    # The unreadable body's key was never claimed: it serves the corrected request.
    good = await redeem(client, till.headers, {"code": card["code"], "amount": 10}, key="k-unreadable")
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers, good.text
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 9_990


async def test_a_keys_answer_is_its_posting_rendered_alike_the_first_time_and_on_replay(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
) -> None:
    """The statement keeps a redemption's answer as its posting (JSON), also as 0006 to 0013 wrote it: a
    posting written by hand from the ledger replays as the answer first given."""
    card = await issue_card(client, merchant, 10_000)
    body = {"code": card["code"], "amount": 700}
    first = await redeem(client, till.headers, body, key="before-upgrade")
    assert first.status_code == 201
    await db.execute(
        """UPDATE idempotency_keys k SET status = NULL, body = NULL, posting = (
               SELECT to_jsonb(p) FROM (
                   SELECT 'ok' AS outcome, e.id AS entry_id, e.amount AS entry_amount, 700 AS requested,
                          e.card_id, 'active' AS card_state, e.balance_after AS card_balance,
                          e.currency AS card_currency, c.expires_at AS card_expires_at,
                          NULL::bigint AS refundable, e.created_at
                     FROM ledger_entries e JOIN cards c ON c.id = e.card_id
                    WHERE e.card_id = $1 AND e.kind = 'redeem') AS p)
           WHERE k.key = 'before-upgrade'""",
        card["id"],
    )
    again = await redeem(client, till.headers, body, key="before-upgrade")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    conflict = await redeem(client, till.headers, {**body, "amount": 1}, key="before-upgrade")
    assert conflict.status_code == 422
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 9_300


async def test_a_rate_limited_terminal_cannot_slip_a_good_code_through(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
) -> None:
    card = await issue_card(client, merchant, 10_000)
    await db.executemany("INSERT INTO failed_attempts (subject) VALUES ($1)", [(f"terminal:{till.id}",)] * 10)
    response = await redeem(client, till.headers, {"code": card["code"], "amount": 1})
    assert response.status_code == 429 and "retry-after" in response.headers
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 10_000

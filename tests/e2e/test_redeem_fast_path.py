"""The one-round-trip redemption answers, records and replays exactly as the general path does, and hands
every case it does not own (limits, revoked or unknown credentials, retired keys, unknown codes) over.

A request sent without Content-Length (chunked) always takes the general path, which is how these tests
put the two side by side.
"""

from __future__ import annotations

import re

import asyncpg
import httpx
import pytest

from tests.support.api import Merchant, admin_headers, issue_card
from tests.support.redemption import record_fast_calls, redeem
from tests.support.servers import LiveServer
from tests.support.terminals import Terminal, create_store, new_terminal, qr_payload

VOLATILE = re.compile(r'"(id|created_at|card)":("[^"]*"|\{[^}]*\})')


@pytest.fixture
def fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return record_fast_calls(monkeypatch)


def shape(response: httpx.Response) -> str:
    return VOLATILE.sub(r'"\1":"…"', response.text)


@pytest.fixture
async def till(client: httpx.AsyncClient, merchant: Merchant) -> Terminal:
    store = await create_store(client, merchant, redeem_limit=50_000)
    return await new_terminal(client, merchant, store["id"], "clerk")


async def test_both_paths_answer_and_record_alike(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
    fast_calls: list[str],
) -> None:
    answers = {}
    for general in (False, True):
        card = await issue_card(client, merchant, 10_000)
        body = {"qr_payload": await qr_payload(client, merchant, card["id"]), "amount": 2_500}
        taken = await redeem(client, till.headers, body, general=general, key=f"k-{general}")
        short = await redeem(client, till.headers, {**body, "amount": 9_000}, general=general)
        partial = await redeem(
            client, till.headers, {**body, "amount": 9_000, "allow_partial": True}, general=general
        )
        answers[general] = [(r.status_code, shape(r)) for r in (taken, short, partial)]
    assert answers[False] == answers[True]
    assert [status for status, _ in answers[False]] == [201, 402, 201]
    assert fast_calls == ["answered"] * 3
    rows = await db.fetch(
        "SELECT action, outcome, amount, currency, (activity_id IS NULL) AS no_activity, code_last4, card_id "
        "FROM staff_log WHERE action = 'redeem' ORDER BY id"
    )
    fast_rows, general_rows = rows[:3], rows[3:]
    strip = [tuple(r)[:-1] for r in fast_rows], [tuple(r)[:-1] for r in general_rows]
    assert (
        strip[0]
        == strip[1]
        == [
            ("redeem", "ok", 2_500, "CNY", False, None),
            ("redeem", "insufficient_funds", 9_000, "CNY", True, None),
            ("redeem", "ok", 7_500, "CNY", False, None),
        ]
    )


async def test_a_key_replays_the_same_across_paths(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
    fast_calls: list[str],
) -> None:
    card = await issue_card(client, merchant, 10_000)
    body = {"code": card["code"], "amount": 1_000}
    first = await redeem(client, till.headers, body, key="same-key")
    again_fast = await redeem(client, till.headers, body, key="same-key")
    again_general = await redeem(client, till.headers, body, key="same-key", general=True)
    assert first.status_code == again_fast.status_code == again_general.status_code == 201
    assert first.json() == again_fast.json() == again_general.json()
    assert again_fast.headers["idempotent-replayed"] == again_general.headers["idempotent-replayed"] == "true"
    conflict = await redeem(client, till.headers, {**body, "amount": 1}, key="same-key")
    assert conflict.status_code == 422 and conflict.json()["code"] == "idempotency_conflict"
    # And a key first used by the general path replays on the fast one.
    general_first = await redeem(client, till.headers, body, key="other-key", general=True)
    fast_replay = await redeem(client, till.headers, body, key="other-key")
    assert fast_replay.json() == general_first.json() and fast_replay.headers["idempotent-replayed"] == "true"
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 8_000
    assert await db.fetchval("SELECT count(*) FROM ledger_entries WHERE kind = 'redeem'") == 2


async def test_cases_it_does_not_own_go_the_general_way(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    server: LiveServer,
    db: asyncpg.Connection,
    fast_calls: list[str],
) -> None:
    card = await issue_card(client, merchant, 100_000)
    payload = await qr_payload(client, merchant, card["id"])
    above_limit = await redeem(client, till.headers, {"qr_payload": payload, "amount": 50_001})
    assert above_limit.status_code == 403 and above_limit.json()["code"] == "store_limit_exceeded"

    unknown = await redeem(client, till.headers, {"code": "2345-6789-ABCD-EFGH-JKL2", "amount": 1})
    assert unknown.status_code == 404  # malformed or unknown: counted as a failed lookup by the general path
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
    assert "fallback" in fast_calls and "answered" not in fast_calls


async def test_a_rate_limited_terminal_cannot_slip_a_good_code_through(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
    fast_calls: list[str],
) -> None:
    card = await issue_card(client, merchant, 10_000)
    await db.executemany("INSERT INTO failed_attempts (subject) VALUES ($1)", [(f"terminal:{till.id}",)] * 10)
    response = await redeem(client, till.headers, {"code": card["code"], "amount": 1})
    assert response.status_code == 429 and "retry-after" in response.headers
    assert fast_calls == ["fallback"]
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 10_000

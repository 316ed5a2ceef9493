"""Hostile and malformed requests each get a clear 4xx problem document, and nothing is stored."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.support.api import Merchant, issue_card, with_key


async def counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    row = await db.fetchrow(
        """SELECT (SELECT count(*) FROM cards), (SELECT count(*) FROM ledger_entries),
                  (SELECT count(*) FROM idempotency_keys)"""
    )
    return tuple(row)  # type: ignore[return-value]


def raw(merchant: Merchant, content: bytes, content_type: str = "application/json") -> dict[str, object]:
    return {"content": content, "headers": {**merchant.headers, "Content-Type": content_type}}


BAD_BODIES = [
    ("amount as a string", {"amount": "100"}, "amount"),
    ("amount as a float", {"amount": 100.0}, "amount"),
    ("amount as a fraction", {"amount": 99.99}, "amount"),
    ("amount as a boolean", {"amount": True}, "amount"),
    ("negative amount", {"amount": -100}, "amount"),
    ("zero amount", {"amount": 0}, "amount"),
    ("amount over the maximum", {"amount": 100_000_001}, "amount"),
    ("unknown field", {"amount": 100, "balance": 1_000_000}, "balance"),
    ("currency not ISO 4217", {"amount": 100, "currency": "yuan"}, "currency"),
    ("SQL in the currency", {"amount": 100, "currency": "CNY'; DROP TABLE cards; --"}, "currency"),
    ("HTML in the state", {"amount": 100, "state": "<script>alert(1)</script>"}, "state"),
    ("naive expiry time", {"amount": 100, "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
    ("campaign too long", {"amount": 100, "campaign": "x" * 101}, "campaign"),
    ("missing amount", {"currency": "CNY"}, "amount"),
]


@pytest.mark.parametrize(("case", "body", "field"), BAD_BODIES, ids=[c for c, _, _ in BAD_BODIES])
async def test_bad_fields_are_refused_by_name(
    client: httpx.AsyncClient,
    merchant: Merchant,
    db: asyncpg.Connection,
    case: str,
    body: dict[str, object],
    field: str,
) -> None:
    before = await counts(db)
    response = await client.post(
        "/v1/cards", json=body, headers={**merchant.headers, "Idempotency-Key": case.replace(" ", "-")}
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert field in {error["field"] for error in problem["errors"]}
    assert "<script>" not in response.text and "DROP TABLE" not in response.text
    assert await counts(db) == before


@pytest.mark.parametrize(
    ("case", "content", "content_type", "status", "code"),
    [
        (
            "invalid UTF-8",
            b'{"amount": 100, "campaign": "\xff\xfe"}',
            "application/json",
            400,
            "malformed_json",
        ),
        ("not JSON", b"amount=100", "application/json", 400, "malformed_json"),
        ("form encoding", b"amount=100", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        ("plain text", b'{"amount": 100}', "text/plain", 415, "unsupported_media_type"),
        ("a JSON array", b"[100]", "application/json", 400, "invalid_request"),
        ("NaN", b'{"amount": NaN}', "application/json", 400, "malformed_json"),
        ("Infinity", b'{"amount": Infinity}', "application/json", 400, "malformed_json"),
        ("a huge integer", b'{"amount": 1' + b"0" * 5000 + b"}", "application/json", 400, "malformed_json"),
        (
            "deep nesting",
            b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "application/json",
            400,
            "malformed_json",
        ),
        (
            "a duplicate-key trick",
            b'{"amount": 100, "amount": -5}',
            "application/json",
            400,
            "invalid_request",
        ),
    ],
)
async def test_malformed_bodies_are_refused(
    client: httpx.AsyncClient,
    merchant: Merchant,
    db: asyncpg.Connection,
    case: str,
    content: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    before = await counts(db)
    response = await client.post("/v1/cards", **raw(merchant, content, content_type))  # type: ignore[arg-type]
    assert (response.status_code, response.json()["code"]) == (status, code), (case, response.text)
    assert await counts(db) == before


async def test_oversized_bodies_are_refused_with_413(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    before = await counts(db)
    big = b'{"amount": 100, "campaign": "' + b"x" * 2_000_000 + b'"}'
    declared = await client.post("/v1/cards", **raw(merchant, big))  # type: ignore[arg-type]
    assert declared.status_code == 413 and declared.json()["code"] == "payload_too_large"

    async def chunks():  # no Content-Length: the limit must hold while reading
        for _ in range(40):
            yield b"x" * 65_536

    streamed = await client.post(
        "/v1/cards", content=chunks(), headers={**merchant.headers, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await counts(db) == before


async def test_free_text_that_looks_like_sql_or_html_is_stored_as_text(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    """Free-text fields take any text; parameterised queries keep it data (nothing runs, nothing breaks)."""
    campaign = "x'); DROP TABLE cards; --"
    card = await issue_card(client, merchant, 100, campaign=campaign)
    assert card["campaign"] == campaign
    reference = "<img src=x onerror=alert(1)>"
    spent = await client.post(
        "/v1/redemptions",
        json={"code": card["code"], "amount": 1, "reference": reference},
        headers=merchant.headers,
    )
    assert spent.status_code == 201 and spent.headers["content-type"] == "application/json"
    assert await db.fetchval("SELECT reference FROM ledger_entries WHERE kind = 'redeem'") == reference
    assert await db.fetchval("SELECT count(*) FROM cards") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 1},
        {"code": "ABCD", "qr_payload": "GC1AAAA", "amount": 1},
        {"code": "' OR 1=1 --", "amount": 1},
        {"qr_payload": "GC1" + "A" * 148, "amount": 1},
        {"qr_payload": "<svg onload=alert(1)>", "amount": 1},
        {"code": "x" * 65, "amount": 1},
    ],
)
async def test_redemptions_with_bad_card_references_change_nothing(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection, body: dict[str, object]
) -> None:
    await issue_card(client, merchant, 1_000)
    before = await counts(db)
    response = await client.post("/v1/redemptions", json=body, headers=merchant.headers)
    assert response.status_code in (400, 404), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert await counts(db) == before


async def test_nul_characters_are_refused_not_crashed_on(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    body = await client.post(
        "/v1/cards", json={"amount": 100, "campaign": "qi\u0000xi"}, headers=merchant.headers
    )
    assert body.status_code == 400 and body.json()["errors"][0]["field"] == "campaign"
    path = await client.get("/v1/cards/card_%00", headers=merchant.headers)
    assert path.status_code == 404 and path.json()["code"] == "not_found"
    query = await client.get("/v1/cards", params={"campaign": "a\u0000"}, headers=merchant.headers)
    assert query.status_code == 400


# str.isdigit takes superscripts (int() then refuses them) and int() reads other scripts' digits: an id or a
# number in a request is ASCII digits or nothing.
NOT_ASCII_DIGITS = ["\u00b2", "12\u00b3", "\u0661\u0662", "\uff11\uff12", "\u0663", "\u07c1", "\u06f1\u06f2"]


@pytest.mark.parametrize("digits", NOT_ASCII_DIGITS)
async def test_ids_with_digits_of_other_scripts_name_nothing(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection, digits: str
) -> None:
    card = await issue_card(client, merchant, 1_000)
    before = await counts(db)
    answers = {
        "activity": await client.get(f"/v1/activities/act_{digits}", headers=merchant.headers),
        "refund": await client.post(
            "/v1/refunds", json={"redemption": f"act_{digits}", "amount": 100}, headers=with_key(merchant)
        ),
        "history cursor": await client.get(
            f"/v1/cards/{card['id']}/activities",
            params={"starting_after": f"act_{digits}"},
            headers=merchant.headers,
        ),
        "outbox message": await client.post(
            f"/v1/wechat/outbox/wxmsg_{digits}/replay", headers=with_key(merchant)
        ),
        "discrepancy": await client.post(
            f"/v1/wechat/discrepancies/wxdis_{digits}/resolve", json={}, headers=with_key(merchant)
        ),
    }
    statuses = {name: (r.status_code, r.json().get("code")) for name, r in answers.items()}
    assert statuses == {
        "activity": (404, "activity_not_found"),
        "refund": (404, "activity_not_found"),
        "history cursor": (404, "activity_not_found"),
        "outbox message": (404, "not_found"),
        "discrepancy": (404, "not_found"),
    }
    staff_cursor = await client.get(
        "/v1/staff_log", params={"starting_after": f"slog_{digits}"}, headers=merchant.headers
    )
    assert (staff_cursor.status_code, staff_cursor.json()["code"]) == (400, "invalid_request")
    assert (await counts(db))[:2] == before[:2]  # no card, no entry (refusals keep their key)


@pytest.mark.parametrize("digits", ["\u0661\u0660", "\uff11\uff10", "1\u0660"])
async def test_query_numbers_are_ascii_digits_only(
    client: httpx.AsyncClient, merchant: Merchant, digits: str
) -> None:
    response = await client.get("/v1/cards", params={"limit": digits}, headers=merchant.headers)
    assert response.status_code == 400, response.text
    assert response.json()["errors"] == [{"field": "limit", "message": "must be a whole number"}]

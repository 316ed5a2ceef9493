"""The redemption a till makes all day, in one round trip to the database (`redeem_request`, schema/0006).

It covers the plain case only and says so by returning None for anything else; the caller then takes the
general path, which owns every other answer. Both paths store and replay idempotency keys the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from giftcards import idempotency, ledger, ratelimit
from giftcards.secrets_box import SecretBox


@dataclass(frozen=True)
class QuickRedemption:
    """What the caller has checked already: the credential's form, the body, the signed payload."""

    token_kind: str  # api_key | terminal
    merchant_id: str
    token_hash: bytes
    client: str | None
    key: str | None
    fingerprint: bytes
    kid: str | None  # of a verified QR payload; the database checks that it is not retired
    card_id: str | None
    code_hash: bytes | None
    code_last4: str | None
    amount: int
    currency: str | None
    allow_partial: bool
    reference: str | None


_CALL = "SELECT * FROM redeem_request($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"


async def redeem(conn: asyncpg.Connection, box: SecretBox, r: QuickRedemption) -> idempotency.Outcome | None:
    try:
        row = await _call(conn, r)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name != "idempotency_keys_pkey":
            raise
        return None  # a concurrent request with the same key won: the general path replays its outcome
    route = row["route"]
    if route == "fallback":
        return None
    if route == "stored":  # the key was used before: replay it, or refuse a different request
        assert r.key is not None
        context = idempotency.answer_context(r.merchant_id, row["principal"], r.key)
        return idempotency.stored_outcome(row, r.fingerprint, box, context)
    status, payload = ledger.redemption_answer(json.loads(row["posting"]))
    return idempotency.Outcome(status, idempotency.encode(payload), replayed=False)


async def _call(conn: asyncpg.Connection, r: QuickRedemption) -> asyncpg.Record:
    return await conn.fetchrow(
        _CALL,
        r.token_kind, r.merchant_id, r.token_hash, r.client, r.key, r.fingerprint, r.kid, r.card_id,
        r.code_hash, r.code_last4, r.amount, r.currency, r.allow_partial, r.reference,
        ratelimit.LIMIT, ratelimit.WINDOW_SECONDS,
    )  # fmt: skip

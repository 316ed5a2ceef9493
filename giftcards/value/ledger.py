"""The one write path for value: every balance or state change of a card is a ledger posting.

`post` calls the database function `post_activity` (schema/functions/ledger.sql), which locks the card row,
applies the
rules of the activity, updates the card and appends the entry in one statement. A refusal comes back as a
stable problem code with the card's figures, turned here into a DomainError the client can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import asyncpg

from giftcards.core import public_ids
from giftcards.core.errors import DomainError, found, problem_document
from giftcards.core.isotime import iso
from giftcards.stores.merchants import Principal
from giftcards.value.shapes import MAX_AMOUNT, Activity, ActivityActor, ActivityCard, ActivityKind

KINDS = get_args(ActivityKind)

_POST = """SELECT * FROM post_activity($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"""

_REFUSAL_DETAIL = {
    "card_not_found": "no such card",
    "invalid_code": "no card matches this code",
    "invalid_qr_payload": "no card matches this code",  # e.g. issued before the card was passed on
    "insufficient_funds": "the amount is larger than the card balance",
    "card_expired": "the card has expired",
    "card_blocked": "the card is blocked",
    "card_deactivated": "the card is deactivated",
    "card_not_active": "the card has not been activated yet",
    "invalid_state_transition": "the card cannot make this change in its current state",
    "currency_mismatch": "the currency does not match the card",
    "refund_exceeds_redemption": "the refund is larger than what remains of the redemption",
    "not_a_redemption": "only a redemption can be refunded",
    "activity_not_found": "no such activity on this card",
    "balance_limit_exceeded": f"a card balance may not exceed {MAX_AMOUNT}",
}


@dataclass(frozen=True)
class Actor:
    type: str  # api_key | terminal | system | wechat
    id: str | None = None
    store_id: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        return cls(principal.kind, principal.id, principal.store_id)


SYSTEM = Actor("system")


@dataclass(frozen=True)
class Posting:
    entry_id: int
    kind: str
    amount: int
    requested: int | None
    card_id: str
    card_state: str
    balance: int
    currency: str
    expires_at: datetime | None
    refundable: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any], kind: str) -> Posting:
        """From a `ledger_posting` row, or its JSON form (as an idempotency key keeps it)."""
        return cls(
            entry_id=row["entry_id"],
            kind=kind,
            amount=row["entry_amount"],
            requested=row["requested"],
            card_id=row["card_id"],
            card_state=row["card_state"],
            balance=row["card_balance"],
            currency=row["card_currency"],
            expires_at=_time(row["card_expires_at"]),
            refundable=row["refundable"],
            created_at=_time(row["created_at"]),  # type: ignore[arg-type]
        )


def _time(value: datetime | str | None) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def post(
    conn: asyncpg.Connection,
    *,
    merchant_id: str,
    kind: str,
    actor: Actor,
    card_id: str | None = None,
    code_hash: bytes | None = None,
    amount: int | None = None,
    currency: str | None = None,
    allow_partial: bool = False,
    refund_of: int | None = None,
    reason: str | None = None,
    reference: str | None = None,
    idempotency_key: str | None = None,
    payload_generation: int | None = None,
) -> Posting:
    """Post one activity; `payload_generation`, when the card was named by a QR payload, must be the
    card's own (checked under the card's lock), else the answer is invalid_qr_payload."""
    if (card_id is None) == (code_hash is None):
        raise ValueError("name the card by exactly one of card_id and code_hash")
    row = await conn.fetchrow(
        _POST,
        merchant_id,
        card_id,
        code_hash,
        kind,
        amount,
        currency,
        allow_partial,
        refund_of,
        reason,
        actor.type,
        actor.id,
        actor.store_id,
        reference,
        idempotency_key,
        payload_generation,
    )
    if row["outcome"] != "ok":
        raise refusal(row)
    return Posting.of(row, kind)


def redemption_answer(posting: Mapping[str, Any]) -> tuple[int, Activity | dict[str, Any]]:
    """The answer to a redemption from its `ledger_posting` (JSON form): the same the first time and on
    every replay of its idempotency key."""
    if posting["outcome"] != "ok":
        refused = refusal(posting)
        return refused.status, problem_document(refused.code, refused.detail, **refused.extra)
    return 201, redemption_view(Posting.of(posting, "redeem"))


def posting_view(posting: Posting, **more: Any) -> Activity:
    """The answer to a posting just made: the card as it is after it."""
    return Activity(
        id=activity_id(posting.entry_id),
        type=posting.kind,  # type: ignore[arg-type]
        card=ActivityCard(
            id=posting.card_id,
            state=posting.card_state,  # type: ignore[arg-type]
            balance=posting.balance,
            currency=posting.currency,
        ),
        amount=posting.amount,
        balance_after=posting.balance,
        currency=posting.currency,
        created_at=iso(posting.created_at),
        **more,
    )


def redemption_view(posting: Posting) -> Activity:
    taken = -posting.amount
    requested = posting.requested if posting.requested is not None else taken
    return posting_view(
        posting, amount_taken=taken, requested_amount=requested, remainder_due=requested - taken
    )


def refusal(row: Mapping[str, Any]) -> DomainError:
    code = row["outcome"]
    extra: dict[str, Any] = {}
    if row["card_id"] is not None and code not in ("invalid_code", "card_not_found", "invalid_qr_payload"):
        extra = {"card": row["card_id"], "balance": row["card_balance"], "currency": row["card_currency"]}
        if code == "card_expired":
            extra["expires_at"] = iso(_time(row["card_expires_at"]))
        if code in ("insufficient_funds",):
            extra["requested_amount"] = row["requested"]
        if row["refundable"] is not None:
            extra["refundable_amount"] = row["refundable"]
    return DomainError(code, _REFUSAL_DETAIL[code], **extra)


def activity_id(entry_id: int) -> str:
    """The public id of a ledger entry: opaque, so it tells nothing of how many entries came before."""
    return public_ids.render("act", entry_id)


def parse_activity_id(value: str) -> int:
    """The ledger entry an activity id names; anything else is no activity at all."""
    return public_ids.parse_or_refuse("act", value, "activity_not_found", "no such activity")


def activity_view(row: asyncpg.Record | dict[str, Any]) -> Activity:
    """An entry of a card's history."""
    return Activity(
        id=activity_id(row["id"]),
        type=row["kind"],
        card=ActivityCard(id=row["card_id"]),
        amount=row["amount"],
        balance_after=row["balance_after"],
        currency=row["currency"],
        reason=row["reason"],
        refund_of=activity_id(row["refund_of"]) if row["refund_of"] else None,
        actor=ActivityActor(row["actor_type"], row["actor_id"]),
        store=row["store_id"],
        reference=row["reference"],
        created_at=iso(row["created_at"]),
    )


async def fetch_entry(conn: asyncpg.Connection, merchant_id: str, entry_id: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT * FROM ledger_entries WHERE merchant_id = $1 AND id = $2", merchant_id, entry_id
    )
    return found(row, "activity", "activity_not_found")

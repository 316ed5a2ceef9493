"""What the back office sees and does: a card's place in the wallet, the outbox (and replaying what was
parked), and the discrepancies between WeChat and the ledger, which are recorded, never settled by
moving money."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from giftcards.core.errors import DomainError, found
from giftcards.core.ids import ascii_int
from giftcards.core.isotime import iso
from giftcards.value import ledger
from giftcards.wechat.cards import wallet_view
from giftcards.wechat.outbox import record_text

log = logging.getLogger("giftcards.wechat")


def message_id(value: int) -> str:
    return f"wxmsg_{value}"


def parse_message_id(value: str) -> int:
    return _parse_numbered("wxmsg", value, "outbox message")


def _parse_numbered(prefix: str, value: str, what: str) -> int:
    """The row number in a back-office id (`prefix_` + digits); any other text names no `what`."""
    head, _, digits = value.partition("_")
    return found(ascii_int(digits) if head == prefix else None, what)


async def list_messages(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    state: str | None,
    card_id: str | None,
    limit: int,
    starting_after: str | None,
) -> dict[str, Any]:
    """Newest first; the cursor is a message id."""
    before = parse_message_id(starting_after) if starting_after else None
    rows = await conn.fetch(
        """SELECT * FROM wechat_outbox
            WHERE merchant_id = $1 AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR card_id = $3)
              AND ($4::bigint IS NULL OR id < $4)
            ORDER BY id DESC LIMIT $5""",
        merchant_id,
        state,
        card_id,
        before,
        limit + 1,
    )
    items = [message_view(row) for row in rows]
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


async def replay(conn: asyncpg.Connection, merchant_id: str, message: str | None) -> dict[str, Any]:
    """Parked message(s) back to pending, attempts reset; `message` None replays every parked one."""
    ident = parse_message_id(message) if message is not None else None
    rows = await conn.fetch(
        """UPDATE wechat_outbox
              SET state = 'pending', attempts = 0, next_attempt_at = now(), replayed_at = now()
            WHERE merchant_id = $1 AND state = 'parked' AND ($2::bigint IS NULL OR id = $2)
            RETURNING *""",
        merchant_id,
        ident,
    )
    if ident is not None and not rows:
        exists = await conn.fetchval(
            "SELECT state FROM wechat_outbox WHERE merchant_id = $1 AND id = $2", merchant_id, ident
        )
        if exists is None:
            raise DomainError("not_found", "no such outbox message")
        raise DomainError("wechat_message_not_parked", f"the message is {exists}, not parked")
    log.info("wechat outbox replay", extra={"merchant": merchant_id, "messages": len(rows)})
    return {"object": "list", "data": [message_view(row) for row in sorted(rows, key=lambda r: r["id"])]}


async def wallet_status(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> dict[str, Any]:
    """Where the card is in WeChat's wallet, and how its updates stand."""
    wallet = await conn.fetchrow(
        "SELECT * FROM wechat_card_codes WHERE merchant_id = $1 AND card_id = $2", merchant_id, card_id
    )
    if wallet is None:
        raise DomainError("not_found", "the card has not been synced to WeChat")
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
                  count(*) FILTER (WHERE state = 'parked') AS parked,
                  count(*) FILTER (WHERE state = 'delivered') AS delivered,
                  max(delivered_at) FILTER (WHERE state = 'delivered') AS last_delivered_at
             FROM wechat_outbox WHERE merchant_id = $1 AND card_id = $2""",
        merchant_id,
        card_id,
    )
    return {
        **wallet_view(wallet),
        "outbox": {
            "pending": row["pending"],
            "parked": row["parked"],
            "delivered": row["delivered"],
            "last_delivered_at": iso(row["last_delivered_at"]),
        },
    }


def message_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": message_id(row["id"]),
        "object": "wechat_outbox_message",
        "card": row["card_id"],
        "activity": ledger.activity_id(row["ledger_entry_id"]) if row["ledger_entry_id"] else None,
        "type": row["entry_kind"],
        "amount": row["amount"],
        "balance": row["balance"],
        "currency": row["currency"],
        "record": record_text(row["entry_kind"], row["amount"], row["balance"]),
        "finish": row["finish"],
        "state": row["state"],
        "attempts": row["attempts"],
        "last_error": row["last_error"],
        "next_attempt_at": iso(row["next_attempt_at"]) if row["state"] == "pending" else None,
        "created_at": iso(row["created_at"]),
        "delivered_at": iso(row["delivered_at"]),
        "parked_at": iso(row["parked_at"]),
        "replayed_at": iso(row["replayed_at"]),
    }


def discrepancy_id(value: int) -> str:
    return f"wxdis_{value}"


def parse_discrepancy_id(value: str) -> int:
    return _parse_numbered("wxdis", value, "discrepancy")


async def list_discrepancies(
    conn: asyncpg.Connection, merchant_id: str, *, resolved: bool | None, limit: int
) -> dict[str, Any]:
    rows = await conn.fetch(
        """SELECT * FROM wechat_discrepancies
            WHERE merchant_id = $1 AND ($2::boolean IS NULL OR (resolved_at IS NOT NULL) = $2)
            ORDER BY id DESC LIMIT $3""",
        merchant_id,
        resolved,
        limit + 1,
    )
    items = [discrepancy_view(row) for row in rows]
    return {"object": "list", "data": items[:limit], "has_more": len(items) > limit}


async def resolve_discrepancy(conn: asyncpg.Connection, merchant_id: str, ident: str) -> dict[str, Any]:
    row = await conn.fetchrow(
        """UPDATE wechat_discrepancies SET resolved_at = coalesce(resolved_at, now())
            WHERE merchant_id = $1 AND id = $2 RETURNING *""",
        merchant_id,
        parse_discrepancy_id(ident),
    )
    return discrepancy_view(found(row, "discrepancy"))


def discrepancy_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": discrepancy_id(row["id"]),
        "object": "wechat_discrepancy",
        "card": row["card_id"],
        "type": row["kind"],
        "balance": row["balance"],
        "detail": row["detail"],
        "created_at": iso(row["created_at"]),
        "resolved_at": iso(row["resolved_at"]),
    }

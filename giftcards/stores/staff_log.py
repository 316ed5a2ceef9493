"""The staff audit log: every terminal action and attempt, with its outcome, for the back office.

Entries are append-only (the database refuses UPDATE and DELETE). A successful action is recorded in
the transaction of the action itself; a refused one after that transaction has rolled back, so the
record survives it (stores/guard.py); a redemption's, by the redemption statement itself
(schema/functions/redemption.sql).
An entry never holds a card code or a token: at most the last four symbols typed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

import asyncpg

from giftcards.core import public_ids
from giftcards.core.isotime import iso
from giftcards.core.shapes import Page, page
from giftcards.stores.merchants import Principal
from giftcards.stores.shapes import StaffAction, StaffLogEntry
from giftcards.value import codes, ledger

ACTIONS = get_args(StaffAction)
EXPORT_MAX_ROWS = 100_000
CSV_COLUMNS = (
    "id",
    "created_at",
    "terminal",
    "store",
    "action",
    "outcome",
    "card",
    "code_last4",
    "amount",
    "currency",
    "activity",
    "flagged",
    "client_address",
)
_ALPHABET = frozenset(codes.ALPHABET)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Entry:
    """What one attempt was about; filled in as the attempt learns more (the card, the amount)."""

    action: str
    outcome: str = "ok"
    card_id: str | None = None
    code_last4: str | None = None
    amount: int | None = None
    currency: str | None = None
    activity_id: int | None = None
    flagged: bool = False


def typed_last4(raw: str | None) -> str | None:
    """The last four code symbols of what was typed: enough to match a complaint, useless to spend."""
    if not raw:
        return None
    symbols = [c for c in raw.upper() if c in _ALPHABET]
    return "".join(symbols[-4:]) or None


async def record(conn: asyncpg.Connection, principal: Principal, entry: Entry, *, client: str | None) -> None:
    if entry.action not in ACTIONS:
        raise ValueError(f"unknown staff action {entry.action!r}")
    await conn.execute(  # schema/functions/staff_log.sql
        "SELECT record_staff_action($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        principal.merchant_id,
        principal.id,
        principal.store_id,
        entry.action,
        entry.outcome,
        entry.card_id,
        entry.code_last4,
        entry.amount,
        entry.currency,
        entry.activity_id,
        entry.flagged,
        client,
    )


@dataclass(frozen=True)
class Filters:
    terminal_id: str | None = None
    store_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    created_gte: datetime | None = None
    created_lt: datetime | None = None
    flagged: bool | None = None


_WHERE = """merchant_id = $1
             AND ($2::text IS NULL OR terminal_id = $2)
             AND ($3::text IS NULL OR store_id = $3)
             AND ($4::text IS NULL OR action = $4)
             AND ($5::text IS NULL OR outcome = $5)
             AND ($6::timestamptz IS NULL OR created_at >= $6)
             AND ($7::timestamptz IS NULL OR created_at < $7)
             AND ($8::boolean IS NULL OR flagged = $8)"""


def _filter_args(merchant_id: str, f: Filters) -> tuple[Any, ...]:
    return (
        merchant_id,
        f.terminal_id,
        f.store_id,
        f.action,
        f.outcome,
        f.created_gte,
        f.created_lt,
        f.flagged,
    )


async def query(
    conn: asyncpg.Connection, merchant_id: str, filters: Filters, *, limit: int, starting_after: str | None
) -> Page[StaffLogEntry]:
    """Newest first; the cursor is an entry id."""
    before = parse_entry_id(starting_after) if starting_after else None
    rows = await conn.fetch(
        # _WHERE is a constant of this module; every value is a parameter.
        f"""SELECT * FROM staff_log WHERE {_WHERE} AND ($9::bigint IS NULL OR id < $9)
            ORDER BY id DESC LIMIT $10""",  # noqa: S608
        *_filter_args(merchant_id, filters),
        before,
        limit + 1,
    )
    return page([entry_view(row) for row in rows], limit)


async def export_csv(conn: asyncpg.Connection, merchant_id: str, filters: Filters) -> tuple[list[str], bool]:
    """The matching entries, oldest first, as CSV lines (header first); True when cut at the maximum."""
    lines = [_csv_line(CSV_COLUMNS)]
    async with conn.transaction():
        cursor = conn.cursor(
            f"SELECT * FROM staff_log WHERE {_WHERE} ORDER BY id LIMIT $9",  # noqa: S608 (constant SQL)
            *_filter_args(merchant_id, filters),
            EXPORT_MAX_ROWS + 1,
            prefetch=1000,
        )
        async for row in cursor:
            if len(lines) > EXPORT_MAX_ROWS:
                return lines, True
            view = entry_view(row)
            lines.append(
                _csv_line(
                    (
                        view.id,
                        view.created_at,
                        view.terminal,
                        view.store,
                        view.action,
                        view.outcome,
                        view.card,
                        view.code_last4,
                        view.amount,
                        view.currency,
                        view.activity,
                        "true" if view.flagged else "false",
                        view.client_address,
                    )
                )
            )
    return lines, False


def _csv_line(values: tuple[Any, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_cell(v) for v in values])
    return out.getvalue()


def _cell(value: Any) -> str:
    """Text that a spreadsheet would run as a formula is quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def entry_id(number: int) -> str:
    """The public id of a staff-log entry: opaque, like an activity id (public_ids)."""
    return public_ids.render("slog", number)


def parse_entry_id(value: str) -> int:
    return public_ids.parse_or_refuse(
        "slog", value, "invalid_request", "starting_after names no staff log entry"
    )


def entry_view(row: asyncpg.Record) -> StaffLogEntry:
    return StaffLogEntry(
        id=entry_id(row["id"]),
        terminal=row["terminal_id"],
        store=row["store_id"],
        action=row["action"],
        outcome=row["outcome"],
        card=row["card_id"],
        code_last4=row["code_last4"],
        amount=row["amount"],
        currency=row["currency"],
        activity=ledger.activity_id(row["activity_id"]) if row["activity_id"] else None,
        flagged=row["flagged"],
        client_address=row["client_address"],
        created_at=iso(row["created_at"]),
    )

"""How a terminal acts on a card outside a redemption (look up, refund, block): its failed-lookup limit, what
its role allows, and a staff-log record of every attempt whatever its outcome. API keys pass straight
through. A redemption does all of this inside its own statement (value/redemption.py,
schema/functions/redemption.sql).

A successful action is recorded in its own transaction; a refused one after that transaction has rolled
back (the caller runs `after` then), so the record and the failure count survive the rollback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from giftcards.core.errors import DomainError
from giftcards.stores import ratelimit, staff_log, terminals
from giftcards.stores.merchants import Principal
from giftcards.value import ledger
from giftcards.value.shapes import Activity, Card

AfterRollback = Callable[[asyncpg.Connection], Awaitable[None]]

T = TypeVar("T")


async def guarded(
    conn: asyncpg.Connection,
    principal: Principal,
    action: str,
    work: Callable[[], Awaitable[T]],
    *,
    client: str | None,
    after: list[AfterRollback],
    typed_code: str | None = None,
    looks_up: bool = False,
    amount: int | None = None,
    redemption: str | None = None,
) -> T:
    """`work` as `principal` may do it. `looks_up`: the action names a card by code or QR payload, so
    a wrong one counts as a failed lookup (and the limit applies before it)."""
    if principal.kind != "terminal":
        return await work()
    entry = staff_log.Entry(action, amount=amount, code_last4=staff_log.typed_last4(typed_code))
    try:
        if looks_up:
            await ratelimit.check_terminal(conn, principal, client)
        if action == "refund" and redemption is not None:
            await terminals.authorize_refund(conn, principal, redemption, entry)
        elif action == "block":
            terminals.authorize_block(principal)
        async with conn.transaction():  # the action and its record commit together
            result = await work()
            _learn(entry, result)
            await staff_log.record(conn, principal, entry, client=client)
        return result
    except DomainError as exc:
        entry.outcome = exc.code
        if isinstance(exc.extra.get("card"), str):
            entry.card_id, entry.currency = exc.extra["card"], exc.extra.get("currency")
        counted = looks_up and exc.code in ratelimit.LOOKUP_FAILURES

        async def record_refusal(conn: asyncpg.Connection) -> None:
            if counted:
                entry.flagged = await ratelimit.record_terminal_failure(conn, principal, client)
            await staff_log.record(conn, principal, entry, client=client)

        after.append(record_refusal)
        raise


def _learn(entry: staff_log.Entry, result: object) -> None:
    if isinstance(result, Card):
        entry.card_id, entry.currency, entry.code_last4 = result.id, result.currency, result.code_last4
    elif isinstance(result, Activity):
        entry.card_id, entry.currency = result.card.id, result.currency
        entry.activity_id = ledger.parse_activity_id(result.id)
        entry.amount = abs(result.amount) or None

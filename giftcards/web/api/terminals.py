"""Stores, terminals and the staff log (back office); enrollment (device); the terminal's own calls.

`staff_guard` is how a card endpoint lets a terminal act (stores/guard.py: its limit, its role, the staff
log); a redemption's checks are the redemption statement's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from starlette.responses import Response

from giftcards.core.errors import DomainError
from giftcards.core.shapes import Page, given
from giftcards.runtime import Runtime
from giftcards.stores import guard, ratelimit, staff_log, terminals
from giftcards.stores.merchants import Principal
from giftcards.stores.shapes import (
    BlockCard,
    CreateStore,
    CreateTerminal,
    Enroll,
    StaffLogEntry,
    StaffLogFilters,
    StaffLogQuery,
    Store,
    StoreChange,
    Terminal,
    TerminalChange,
    TerminalQuery,
    TerminalRedemption,
)
from giftcards.value import cards
from giftcards.value.cards import CardRef
from giftcards.value.shapes import Activity
from giftcards.web.calls import (
    MERCHANT,
    PUBLIC,
    TERMINAL,
    TEXT,
    Call,
    Operations,
    Result,
    client_address,
    register_authenticator,
)
from giftcards.web.routing import Api

T = TypeVar("T")


async def staff_guard(call: Call, action: str, work: Callable[[], Awaitable[T]], **details: Any) -> T:
    """`work` as the calling terminal may do it, recorded in the staff log (stores/guard.py)."""
    return await guard.guarded(
        call.conn,
        call.principal,
        action,
        work,
        client=client_address(call.request),
        after=call.after,
        **details,
    )


async def _terminal(conn: asyncpg.Connection, rt: Runtime, token: str) -> Principal:
    return await terminals.authenticate(conn, rt.keyring, token)


def _filters(q: StaffLogFilters) -> staff_log.Filters:
    return staff_log.Filters(
        terminal_id=q.terminal,
        store_id=q.store,
        action=q.action,
        outcome=q.outcome,
        flagged=q.flagged,
        created_gte=q.created_gte,
        created_lt=q.created_lt,
    )


def register(api: Api) -> None:
    register_authenticator("terminal", terminals.TOKEN_PREFIX + "_", _terminal)
    _register_back_office(api)
    _register_terminal(api)


def _register_back_office(api: Api) -> None:
    route = Operations(api, tag="terminals", auth=MERCHANT)

    @route.post("/v1/stores", tag="stores", created=Store, body=CreateStore)
    async def create_store(call: Call) -> Result:
        """Create a store"""
        b: CreateStore = call.body
        return 201, await terminals.create_store(
            call.conn, call.merchant_id, name=b.name, redeem_limit=b.redeem_limit, timezone=b.timezone
        )

    @route.get("/v1/stores", tag="stores", answer=Page[Store])
    async def list_stores(call: Call) -> Result:
        """List stores"""
        return 200, Page(data=await terminals.list_stores(call.conn, call.merchant_id))

    @route.get("/v1/stores/{store_id}", tag="stores", answer=Store)
    async def get_store(call: Call) -> Result:
        """A store"""
        return 200, await terminals.get_store(call.conn, call.merchant_id, call.path["store_id"])

    @route.post("/v1/stores/{store_id}", tag="stores", answer=Store, body=StoreChange)
    async def update_store(call: Call) -> Result:
        """Change a store's name, clerk limit or time zone"""
        return 200, await terminals.update_store(
            call.conn, call.merchant_id, call.path["store_id"], given(call.body)
        )

    @route.post("/v1/terminals", created=Terminal, body=CreateTerminal, no_store=True)
    async def create_terminal(call: Call) -> Result:
        """Create a terminal; the answer holds its one-time enrollment code"""
        b: CreateTerminal = call.body
        return 201, await terminals.create_terminal(
            call.conn,
            call.keyring,
            call.merchant_id,
            store_id=b.store,
            label=b.label,
            role=b.role,
            api_key_id=call.principal.id,
        )

    @route.get("/v1/terminals", answer=Page[Terminal], query=TerminalQuery, no_store=True)
    async def list_terminals(call: Call) -> Result:
        """List terminals"""
        data = await terminals.list_terminals(call.conn, call.merchant_id, store_id=call.query.store)
        return 200, Page(data=data)

    @route.get("/v1/terminals/{terminal_id}", answer=Terminal, no_store=True)
    async def get_terminal(call: Call) -> Result:
        """A terminal"""
        return 200, await terminals.get_terminal(call.conn, call.merchant_id, call.path["terminal_id"])

    @route.post("/v1/terminals/{terminal_id}", answer=Terminal, body=TerminalChange, no_store=True)
    async def update_terminal(call: Call) -> Result:
        """Change a terminal's label or role (effective on its next call)"""
        return 200, await terminals.update_terminal(
            call.conn, call.merchant_id, call.path["terminal_id"], label=call.body.label, role=call.body.role
        )

    @route.post("/v1/terminals/{terminal_id}/revoke", answer=Terminal, no_store=True)
    async def revoke_terminal(call: Call) -> Result:
        """Revoke a terminal for good: its token fails from the next call on"""
        return 200, await terminals.revoke_terminal(call.conn, call.merchant_id, call.path["terminal_id"])

    @route.post("/v1/terminals/{terminal_id}/rotate", answer=Terminal, no_store=True)
    async def rotate_terminal(call: Call) -> Result:
        """End the terminal's token at once and give a new enrollment code"""
        return 200, await terminals.rotate_terminal(
            call.conn, call.keyring, call.merchant_id, call.path["terminal_id"], api_key_id=call.principal.id
        )

    @route.get("/v1/staff_log", answer=Page[StaffLogEntry], query=StaffLogQuery)
    async def query_staff_log(call: Call) -> Result:
        """The staff audit log, newest first"""
        return 200, await staff_log.query(
            call.conn,
            call.merchant_id,
            _filters(call.query),
            limit=call.query.limit,
            starting_after=call.query.starting_after,
        )

    @route.get(
        "/v1/staff_log.csv",
        summary=f"The staff audit log as CSV, oldest first (at most {staff_log.EXPORT_MAX_ROWS} rows)",
        answer=TEXT,
        query=StaffLogFilters,
        media_type="text/csv",
    )
    async def export_staff_log(call: Call) -> Result:
        lines, truncated = await staff_log.export_csv(call.conn, call.merchant_id, _filters(call.query))
        headers = {
            "Content-Disposition": 'attachment; filename="staff-log.csv"',
            "X-Export-Truncated": "true" if truncated else "false",
        }
        return Response("".join(lines), media_type="text/csv; charset=utf-8", headers=headers)


def _register_terminal(api: Api) -> None:
    route = Operations(api, tag="terminal", auth=TERMINAL)

    @route.post("/v1/terminal/enroll", auth=PUBLIC, created=Terminal, body=Enroll, no_store=True)
    async def terminal_enroll(call: Call) -> Result:
        """Exchange a one-time enrollment code for this device's terminal token (shown once)"""
        client = client_address(call.request)
        subjects = ratelimit.enrollment_subjects(client)
        await ratelimit.check(call.conn, subjects)
        try:
            return 201, await terminals.enroll(call.conn, call.keyring, call.body.code, client=client)
        except DomainError as exc:
            if exc.code == "invalid_enrollment_code":

                async def count(conn: asyncpg.Connection) -> None:
                    await ratelimit.record_failure(conn, subjects)

                call.after.append(count)
            raise

    @route.get("/v1/terminal", answer=Terminal, no_store=True)
    async def terminal_whoami(call: Call) -> Result:
        """This terminal, its role and its store"""
        return 200, await terminals.whoami(call.conn, call.principal)

    @route.get("/v1/terminal/redemptions", answer=Page[TerminalRedemption])
    async def terminal_redemptions(call: Call) -> Result:
        """This terminal's redemptions of today (the store's day), newest first"""
        return 200, await terminals.todays_redemptions(call.conn, call.principal)

    @route.post("/v1/terminal/cards/block", created=Activity, body=BlockCard)
    async def terminal_block_card(call: Call) -> Result:
        """Block a card by its code or QR payload (manager terminals)"""
        ref = CardRef(code=call.body.code or None, qr_payload=call.body.qr_payload or None)

        async def work() -> Activity:
            card = await cards.lookup(call.conn, call.keyring, call.rt.qr_keys, call.merchant_id, ref)
            return await cards.change(
                call.conn,
                call.principal,
                card.id,
                "block",
                reason=call.body.reason,
                idempotency_key=call.idempotency_key,
            )

        return 201, await staff_guard(call, "block", work, typed_code=ref.code, looks_up=True)

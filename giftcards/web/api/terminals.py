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
from giftcards.runtime import Runtime
from giftcards.stores import guard, ratelimit, staff_log, terminals
from giftcards.stores.merchants import Principal
from giftcards.value import cards, ledger
from giftcards.value.cards import CardRef
from giftcards.value.shapes import Activity
from giftcards.web.calls import Call, Result, client_address, endpoint, register_authenticator
from giftcards.web.openapi import list_of
from giftcards.web.routing import Api
from giftcards.web.validation import parse_datetime

PLAIN = "^[^\\x00-\\x1f\\x7f]+$"  # no control characters
ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": "^[a-z0-9_]+$",
    "x-pattern-message": "is not an id",
}
ROLE = {"type": "string", "enum": list(terminals.ROLES)}
LABEL = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": PLAIN}
STORE_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": PLAIN},
    "redeem_limit": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": ledger.MAX_AMOUNT,
        "description": "The most a clerk terminal may take in one redemption, in minor units; null: no limit",
    },
    "timezone": {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "pattern": "^[A-Za-z0-9_+/-]+$",
        "x-pattern-message": "must be an IANA time zone, e.g. Asia/Shanghai",
        "description": "IANA, e.g. Asia/Shanghai",
    },
}
LOG_FILTERS = {
    "terminal": ID,
    "store": ID,
    "action": {"type": "string", "enum": list(staff_log.ACTIONS)},
    "outcome": {
        "type": "string",
        "pattern": "^[a-z_]{2,40}$",
        "x-pattern-message": "must be ok or a problem code",
    },
    "flagged": {"type": "boolean"},
    "created_gte": {"type": "string", "format": "date-time"},
    "created_lt": {"type": "string", "format": "date-time"},
}


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


def _filters(q: dict[str, Any]) -> staff_log.Filters:
    return staff_log.Filters(
        terminal_id=q.get("terminal"),
        store_id=q.get("store"),
        action=q.get("action"),
        outcome=q.get("outcome"),
        flagged=q.get("flagged"),
        created_gte=parse_datetime(q["created_gte"]) if "created_gte" in q else None,
        created_lt=parse_datetime(q["created_lt"]) if "created_lt" in q else None,
    )


def register(api: Api) -> None:
    register_authenticator("terminal", terminals.TOKEN_PREFIX + "_", _terminal)
    _register_back_office(api)
    _register_terminal(api)


def _register_back_office(api: Api) -> None:
    store = api.schema(
        "Store",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "store"},
                "name": {"type": "string"},
                "redeem_limit": {"type": ["integer", "null"]},
                "timezone": {"type": "string"},
                "created_at": {"type": "string"},
                "updated_at": {"type": "string"},
            },
        },
    )
    terminal = api.schema(
        "Terminal",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "terminal"},
                "store": {"oneOf": [{"type": "string"}, store]},
                "label": {"type": "string"},
                "role": ROLE,
                "state": {"type": "string", "enum": ["awaiting_enrollment", "active", "revoked"]},
                "token_last4": {"type": ["string", "null"]},
                "enrolled_at": {"type": ["string", "null"]},
                "revoked_at": {"type": ["string", "null"]},
                "flagged_at": {"type": ["string", "null"]},
                "created_at": {"type": "string"},
                "enrollment": {
                    "type": "object",
                    "description": "Only when the terminal is created or rotated: the one-time code",
                    "properties": {"code": {"type": "string"}, "expires_at": {"type": "string"}},
                },
                "token": {"type": "string", "description": "Only in the enrollment answer"},
            },
        },
    )
    log_entry = api.schema(
        "StaffLogEntry",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "staff_log_entry"},
                "terminal": {"type": "string"},
                "store": {"type": "string"},
                "action": {"type": "string", "enum": list(staff_log.ACTIONS)},
                "outcome": {"type": "string", "description": "ok, or the problem code of the refusal"},
                "card": {"type": ["string", "null"]},
                "code_last4": {"type": ["string", "null"]},
                "amount": {"type": ["integer", "null"]},
                "currency": {"type": ["string", "null"]},
                "activity": {"type": ["string", "null"]},
                "flagged": {"type": "boolean"},
                "client_address": {"type": ["string", "null"]},
                "created_at": {"type": "string"},
            },
        },
    )

    @endpoint(
        api,
        "POST",
        "/v1/stores",
        summary="Create a store",
        tag="stores",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": STORE_FIELDS,
        },
        responses={201: store},
    )
    async def create_store(call: Call) -> Result:
        b = call.body
        return 201, await terminals.create_store(
            call.conn,
            call.merchant_id,
            name=b["name"],
            redeem_limit=b.get("redeem_limit"),
            timezone=b.get("timezone", "Asia/Shanghai"),
        )

    @endpoint(
        api,
        "GET",
        "/v1/stores",
        summary="List stores",
        tag="stores",
        auth=("api_key",),
        responses={200: list_of(store)},
    )
    async def list_stores(call: Call) -> Result:
        return 200, {
            "object": "list",
            "data": await terminals.list_stores(call.conn, call.merchant_id),
            "has_more": False,
        }

    @endpoint(
        api,
        "GET",
        "/v1/stores/{store_id}",
        summary="A store",
        tag="stores",
        auth=("api_key",),
        responses={200: store},
    )
    async def get_store(call: Call) -> Result:
        return 200, await terminals.get_store(call.conn, call.merchant_id, call.path["store_id"])

    @endpoint(
        api,
        "POST",
        "/v1/stores/{store_id}",
        summary="Change a store's name, clerk limit or time zone",
        tag="stores",
        auth=("api_key",),
        idempotent=True,
        body={"type": "object", "additionalProperties": False, "properties": STORE_FIELDS},
        responses={200: store},
    )
    async def update_store(call: Call) -> Result:
        return 200, await terminals.update_store(
            call.conn, call.merchant_id, call.path["store_id"], call.body
        )

    @endpoint(
        api,
        "POST",
        "/v1/terminals",
        summary="Create a terminal; the answer holds its one-time enrollment code",
        tag="terminals",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["store", "label"],
            "additionalProperties": False,
            "properties": {"store": ID, "label": LABEL, "role": ROLE},
        },
        responses={201: terminal},
        no_store=True,
    )
    async def create_terminal(call: Call) -> Result:
        b = call.body
        return 201, await terminals.create_terminal(
            call.conn,
            call.rt.keyring,
            call.merchant_id,
            store_id=b["store"],
            label=b["label"],
            role=b.get("role", "clerk"),
            api_key_id=call.principal.id,
        )

    @endpoint(
        api,
        "GET",
        "/v1/terminals",
        summary="List terminals",
        tag="terminals",
        auth=("api_key",),
        query={"type": "object", "additionalProperties": False, "properties": {"store": ID}},
        responses={200: list_of(terminal)},
        no_store=True,
    )
    async def list_terminals(call: Call) -> Result:
        data = await terminals.list_terminals(call.conn, call.merchant_id, store_id=call.query.get("store"))
        return 200, {"object": "list", "data": data, "has_more": False}

    @endpoint(
        api,
        "GET",
        "/v1/terminals/{terminal_id}",
        summary="A terminal",
        tag="terminals",
        auth=("api_key",),
        responses={200: terminal},
        no_store=True,
    )
    async def get_terminal(call: Call) -> Result:
        return 200, await terminals.get_terminal(call.conn, call.merchant_id, call.path["terminal_id"])

    @endpoint(
        api,
        "POST",
        "/v1/terminals/{terminal_id}",
        summary="Change a terminal's label or role (effective on its next call)",
        tag="terminals",
        auth=("api_key",),
        idempotent=True,
        body={"type": "object", "additionalProperties": False, "properties": {"label": LABEL, "role": ROLE}},
        responses={200: terminal},
        no_store=True,
    )
    async def update_terminal(call: Call) -> Result:
        return 200, await terminals.update_terminal(
            call.conn,
            call.merchant_id,
            call.path["terminal_id"],
            label=call.body.get("label"),
            role=call.body.get("role"),
        )

    @endpoint(
        api,
        "POST",
        "/v1/terminals/{terminal_id}/revoke",
        summary="Revoke a terminal for good: its token fails from the next call on",
        tag="terminals",
        auth=("api_key",),
        idempotent=True,
        responses={200: terminal},
        no_store=True,
    )
    async def revoke_terminal(call: Call) -> Result:
        return 200, await terminals.revoke_terminal(call.conn, call.merchant_id, call.path["terminal_id"])

    @endpoint(
        api,
        "POST",
        "/v1/terminals/{terminal_id}/rotate",
        summary="End the terminal's token at once and give a new enrollment code",
        tag="terminals",
        auth=("api_key",),
        idempotent=True,
        responses={200: terminal},
        no_store=True,
    )
    async def rotate_terminal(call: Call) -> Result:
        return 200, await terminals.rotate_terminal(
            call.conn,
            call.rt.keyring,
            call.merchant_id,
            call.path["terminal_id"],
            api_key_id=call.principal.id,
        )

    @endpoint(
        api,
        "GET",
        "/v1/staff_log",
        summary="The staff audit log, newest first",
        tag="terminals",
        auth=("api_key",),
        query={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **LOG_FILTERS,
                "limit": {"type": "integer", "minimum": 1, "maximum": 100},
                "starting_after": {"type": "string", "maxLength": 64},
            },
        },
        responses={200: list_of(log_entry)},
    )
    async def query_staff_log(call: Call) -> Result:
        return 200, await staff_log.query(
            call.conn,
            call.merchant_id,
            _filters(call.query),
            limit=call.query.get("limit", 20),
            starting_after=call.query.get("starting_after"),
        )

    @endpoint(
        api,
        "GET",
        "/v1/staff_log.csv",
        summary=f"The staff audit log as CSV, oldest first (at most {staff_log.EXPORT_MAX_ROWS} rows)",
        tag="terminals",
        auth=("api_key",),
        query={"type": "object", "additionalProperties": False, "properties": LOG_FILTERS},
        media_type="text/csv",
        responses={200: {"type": "string"}},
    )
    async def export_staff_log(call: Call) -> Result:
        lines, truncated = await staff_log.export_csv(call.conn, call.merchant_id, _filters(call.query))
        headers = {
            "Content-Disposition": 'attachment; filename="staff-log.csv"',
            "X-Export-Truncated": "true" if truncated else "false",
        }
        return Response("".join(lines), media_type="text/csv; charset=utf-8", headers=headers)


def _register_terminal(api: Api) -> None:
    @endpoint(
        api,
        "POST",
        "/v1/terminal/enroll",
        summary="Exchange a one-time enrollment code for this device's terminal token (shown once)",
        tag="terminal",
        body={
            "type": "object",
            "required": ["code"],
            "additionalProperties": False,
            "properties": {"code": {"type": "string", "minLength": 1, "maxLength": 40}},
        },
        responses={201: {"$ref": "#/components/schemas/Terminal"}},
        no_store=True,
    )
    async def terminal_enroll(call: Call) -> Result:
        client = client_address(call.request)
        subjects = ratelimit.enrollment_subjects(client)
        await ratelimit.check(call.conn, subjects)
        try:
            return 201, await terminals.enroll(call.conn, call.rt.keyring, call.body["code"], client=client)
        except DomainError as exc:
            if exc.code == "invalid_enrollment_code":

                async def count(conn: asyncpg.Connection) -> None:
                    await ratelimit.record_failure(conn, subjects)

                call.after.append(count)
            raise

    @endpoint(
        api,
        "GET",
        "/v1/terminal",
        summary="This terminal, its role and its store",
        tag="terminal",
        auth=("terminal",),
        responses={200: {"$ref": "#/components/schemas/Terminal"}},
        no_store=True,
    )
    async def terminal_whoami(call: Call) -> Result:
        return 200, await terminals.whoami(call.conn, call.principal)

    redemption = api.schema(
        "TerminalRedemption",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "redemption"},
                "card": {"type": "string"},
                "code_last4": {"type": "string"},
                "amount_taken": {"type": "integer"},
                "refundable_amount": {"type": "integer"},
                "currency": {"type": "string"},
                "reference": {"type": ["string", "null"]},
                "can_refund": {"type": "boolean"},
                "created_at": {"type": "string"},
            },
        },
    )

    @endpoint(
        api,
        "GET",
        "/v1/terminal/redemptions",
        summary="This terminal's redemptions of today (the store's day), newest first",
        tag="terminal",
        auth=("terminal",),
        responses={200: list_of(redemption)},
    )
    async def terminal_redemptions(call: Call) -> Result:
        return 200, await terminals.todays_redemptions(call.conn, call.principal)

    @endpoint(
        api,
        "POST",
        "/v1/terminal/cards/block",
        summary="Block a card by its code or QR payload (manager terminals)",
        tag="terminal",
        auth=("terminal",),
        idempotent=True,
        body={
            "type": "object",
            "additionalProperties": False,
            "oneOf": [{"required": ["code"]}, {"required": ["qr_payload"]}],
            "x-oneof-message": "give exactly one of code and qr_payload",
            "properties": {
                "code": {"type": "string", "minLength": 1, "maxLength": 64},
                "qr_payload": {"type": "string", "minLength": 1, "maxLength": 512},
                "reason": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": PLAIN},
            },
        },
        responses={201: {"$ref": "#/components/schemas/Activity"}},
    )
    async def terminal_block_card(call: Call) -> Result:
        ref = CardRef(code=call.body.get("code"), qr_payload=call.body.get("qr_payload"))

        async def work() -> Activity:
            card = await cards.lookup(call.conn, call.rt.keyring, call.rt.qr_keys, call.merchant_id, ref)
            return await cards.change(
                call.conn,
                call.principal,
                card.id,
                "block",
                reason=call.body.get("reason"),
                idempotency_key=call.idempotency_key,
            )

        return 201, await staff_guard(call, "block", work, typed_code=ref.code, looks_up=True)

"""Cards, batches, redemptions, refunds and activities: /v1 in the style of Stripe and Square."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from giftcards.core import idempotency
from giftcards.core.errors import DomainError
from giftcards.qr import images as qr
from giftcards.value import cards, ledger
from giftcards.value import redemption as redemptions
from giftcards.value.cards import CardRef, CardSpec
from giftcards.web.api.terminals import staff_guard
from giftcards.web.calls import Call, Result, client_address, credential, endpoint, outcome_response
from giftcards.web.openapi import list_of
from giftcards.web.routing import Api, decode_body, read_object
from giftcards.web.validation import parse_datetime

AMOUNT = {"type": "integer", "minimum": 1, "maximum": ledger.MAX_AMOUNT, "description": "Minor units (fen)"}
SIGNED_AMOUNT = {
    "type": "integer",
    "minimum": -ledger.MAX_AMOUNT,
    "maximum": ledger.MAX_AMOUNT,
    "description": "Minor units, not zero: positive adds, negative takes",
}
CURRENCY = {
    "type": "string",
    "pattern": "^[A-Z]{3}$",
    "x-pattern-message": "must be an ISO 4217 code such as CNY",
}
REFERENCE = {"type": "string", "maxLength": 200, "description": "Your reference, e.g. the till receipt"}
SHORT_TEXT = {"type": "string", "minLength": 1, "maxLength": 100}
CODE = {"type": "string", "minLength": 1, "maxLength": 64, "description": "The card code as typed"}
QR_PAYLOAD = {"type": "string", "minLength": 1, "maxLength": 512, "description": "The scanned QR payload"}
CARD_FIELDS = {
    "amount": AMOUNT,
    "currency": CURRENCY,
    "expires_at": {"type": "string", "format": "date-time"},
    "campaign": SHORT_TEXT,
    "design_id": SHORT_TEXT,
    "state": {
        "type": "string",
        "enum": ["active", "pending"],
        "description": "pending cards need activation",
    },
}
ONE_CARD_REF = {
    "oneOf": [{"required": ["code"]}, {"required": ["qr_payload"]}],
    "x-oneof-message": "give exactly one of code and qr_payload",
}
LIST_LIMIT = {"type": "integer", "minimum": 1, "maximum": 100}
REDEEM_BODY = {
    "type": "object",
    "required": ["amount"],
    "additionalProperties": False,
    **ONE_CARD_REF,
    "properties": {
        "code": CODE,
        "qr_payload": QR_PAYLOAD,
        "amount": AMOUNT,
        "currency": CURRENCY,
        "allow_partial": {
            "type": "boolean",
            "description": "take what there is and report the remainder due",
        },
        "reference": REFERENCE,
    },
}


def _spec(body: dict[str, Any]) -> CardSpec:
    expires = body.get("expires_at")
    return CardSpec(
        amount=body["amount"],
        currency=body.get("currency", "CNY"),
        expires_at=parse_datetime(expires) if expires else None,
        campaign=body.get("campaign"),
        design_id=body.get("design_id"),
        pending=body.get("state") == "pending",
    )


def _ref(body: dict[str, Any]) -> CardRef:
    return CardRef(code=body.get("code"), qr_payload=body.get("qr_payload"))


def register(api: Api) -> None:
    card = api.schema(
        "Card",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "card"},
                "state": {
                    "type": "string",
                    "enum": ["pending", "active", "blocked", "deactivated", "expired"],
                },
                "balance": {"type": "integer"},
                "currency": {"type": "string"},
                "initial_amount": {"type": "integer"},
                "expires_at": {"type": ["string", "null"]},
                "campaign": {"type": ["string", "null"]},
                "design_id": {"type": ["string", "null"]},
                "batch_id": {"type": ["string", "null"]},
                "owner_id": {"type": ["string", "null"]},
                "code_last4": {"type": "string"},
                "code": {"type": "string", "description": "Only in the answer that issues the card"},
                "created_at": {"type": "string"},
                "updated_at": {"type": "string"},
            },
        },
    )
    activity = api.schema(
        "Activity",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "activity"},
                "type": {"type": "string", "enum": list(ledger.KINDS)},
                "card": {"oneOf": [{"type": "string"}, {"type": "object"}]},
                "amount": {"type": "integer"},
                "balance_after": {"type": "integer"},
                "currency": {"type": "string"},
                "amount_taken": {"type": "integer"},
                "requested_amount": {"type": "integer"},
                "remainder_due": {"type": "integer"},
                "refundable_amount": {"type": ["integer", "null"]},
                "refund_of": {"type": ["string", "null"]},
                "created_at": {"type": "string"},
            },
        },
    )
    batch = api.schema(
        "CardBatch",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "card_batch"},
                "count": {"type": "integer"},
                "amount": {"type": "integer"},
                "currency": {"type": "string"},
                "created_at": {"type": "string"},
            },
        },
    )

    @endpoint(
        api,
        "POST",
        "/v1/cards",
        summary="Issue a card",
        tag="cards",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["amount"],
            "additionalProperties": False,
            "properties": CARD_FIELDS,
        },
        responses={201: card},
        no_store=True,
    )
    async def issue_card(call: Call) -> Result:
        return 201, await cards.issue(call.conn, call.rt.keyring, call.principal, _spec(call.body))

    @endpoint(
        api,
        "POST",
        "/v1/card_batches",
        summary="Issue many cards at once (up to 100,000)",
        tag="cards",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["count", "amount"],
            "additionalProperties": False,
            "properties": {
                "count": {"type": "integer", "minimum": 1, "maximum": cards.BATCH_MAX},
                **CARD_FIELDS,
            },
        },
        responses={201: batch},
    )
    async def issue_batch(call: Call) -> Result:
        return 201, await cards.issue_batch(
            call.conn, call.rt.keyring, call.principal, _spec(call.body), call.body["count"]
        )

    @endpoint(
        api,
        "GET",
        "/v1/card_batches/{batch_id}",
        summary="A card batch",
        tag="cards",
        auth=("api_key",),
        responses={200: batch},
    )
    async def get_batch(call: Call) -> Result:
        return 200, await cards.get_batch(call.conn, call.merchant_id, call.path["batch_id"])

    @endpoint(
        api,
        "GET",
        "/v1/card_batches/{batch_id}/cards",
        tag="cards",
        auth=("api_key",),
        summary="The cards of a batch with their codes, streamed as NDJSON (one card a line)",
        media_type="application/x-ndjson",
        responses={200: {"type": "string"}},
        no_store=True,
    )
    async def export_batch(call: Call) -> Result:
        await cards.get_batch(call.conn, call.merchant_id, call.path["batch_id"])
        rows = cards.batch_codes(call.conn, call.rt.keyring, call.merchant_id, call.path["batch_id"])
        # The stream is consumed while the request's connection is still held (see calls._serve).
        lines = [json.dumps(row) + "\n" async for row in rows]
        return StreamingResponse(_iterate(lines), media_type="application/x-ndjson")

    @endpoint(
        api,
        "GET",
        "/v1/cards",
        summary="List cards, newest first",
        tag="cards",
        auth=("api_key",),
        query={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "limit": LIST_LIMIT,
                "starting_after": {"type": "string", "maxLength": 64},
                "state": {
                    "type": "string",
                    "enum": ["pending", "active", "blocked", "deactivated", "expired"],
                },
                "campaign": SHORT_TEXT,
                "created_gte": {"type": "string", "format": "date-time"},
                "created_lt": {"type": "string", "format": "date-time"},
            },
        },
        responses={200: list_of(card)},
        no_store=True,
    )
    async def list_cards(call: Call) -> Result:
        q = call.query
        return 200, await cards.list_cards(
            call.conn,
            call.merchant_id,
            limit=q.get("limit", cards.PAGE_LIMIT_DEFAULT),
            starting_after=q.get("starting_after"),
            state=q.get("state"),
            campaign=q.get("campaign"),
            created_gte=parse_datetime(q["created_gte"]) if "created_gte" in q else None,
            created_lt=parse_datetime(q["created_lt"]) if "created_lt" in q else None,
        )

    @endpoint(
        api,
        "GET",
        "/v1/cards/{card_id}",
        summary="A card",
        tag="cards",
        auth=("api_key",),
        responses={200: card},
        no_store=True,
    )
    async def get_card(call: Call) -> Result:
        return 200, await cards.get(call.conn, call.merchant_id, call.path["card_id"])

    @endpoint(
        api,
        "GET",
        "/v1/cards/{card_id}/code",
        summary="Show a card's code again",
        tag="cards",
        auth=("api_key",),
        responses={200: {"type": "object", "properties": {"code": {"type": "string"}}}},
        no_store=True,
    )
    async def reveal_code(call: Call) -> Result:
        code = await cards.reveal_code(call.conn, call.rt.keyring, call.merchant_id, call.path["card_id"])
        return 200, {"object": "card_code", "card": call.path["card_id"], "code": code}

    @endpoint(
        api,
        "GET",
        "/v1/cards/{card_id}/qr",
        summary="A card's static signed QR payload",
        tag="cards",
        auth=("api_key",),
        responses={200: {"type": "object", "properties": {"payload": {"type": "string"}}}},
        no_store=True,
    )
    async def card_qr(call: Call) -> Result:
        card_id = call.path["card_id"]
        payload = await cards.static_qr(call.conn, call.rt.qr_keys, call.merchant_id, card_id)
        return 200, {"object": "qr_payload", "card": card_id, "payload": payload, "length": len(payload)}

    @endpoint(
        api,
        "GET",
        "/v1/cards/{card_id}/qr.svg",
        summary="A card's static QR code as SVG",
        tag="cards",
        auth=("api_key",),
        media_type="image/svg+xml",
        responses={200: {"type": "string"}},
        no_store=True,
    )
    async def card_qr_svg(call: Call) -> Result:
        payload = await cards.static_qr(call.conn, call.rt.qr_keys, call.merchant_id, call.path["card_id"])
        return Response(qr.render_svg(payload), media_type="image/svg+xml")

    @endpoint(
        api,
        "GET",
        "/v1/cards/{card_id}/activities",
        summary="A card's ledger, newest first",
        tag="activities",
        auth=("api_key",),
        query={
            "type": "object",
            "additionalProperties": False,
            "properties": {"limit": LIST_LIMIT, "starting_after": {"type": "string", "maxLength": 64}},
        },
        responses={200: list_of(activity)},
    )
    async def list_activities(call: Call) -> Result:
        return 200, await cards.list_activities(
            call.conn,
            call.merchant_id,
            call.path["card_id"],
            limit=call.query.get("limit", cards.PAGE_LIMIT_DEFAULT),
            starting_after=call.query.get("starting_after"),
        )

    @endpoint(
        api,
        "GET",
        "/v1/activities/{activity_id}",
        summary="One activity",
        tag="activities",
        auth=("api_key",),
        responses={200: activity},
    )
    async def get_activity(call: Call) -> Result:
        entry_id = ledger.parse_activity_id(call.path["activity_id"])
        return 200, ledger.activity_view(await ledger.fetch_entry(call.conn, call.merchant_id, entry_id))

    @endpoint(
        api,
        "POST",
        "/v1/cards/lookup",
        summary="Find a card by its code or QR payload",
        tag="redemptions",
        auth=("api_key", "terminal"),
        body={
            "type": "object",
            "additionalProperties": False,
            **ONE_CARD_REF,
            "properties": {"code": CODE, "qr_payload": QR_PAYLOAD},
        },
        responses={200: card},
        no_store=True,
    )
    async def lookup(call: Call) -> Result:
        ref = _ref(call.body)
        return 200, await staff_guard(  # a terminal's role, rate limit and staff log
            call,
            "lookup",
            lambda: cards.lookup(call.conn, call.rt.keyring, call.rt.qr_keys, call.merchant_id, ref),
            typed_code=ref.code,
            looks_up=True,
        )

    @endpoint(
        api,
        "POST",
        "/v1/redemptions",
        summary="Take an amount from a card (by code or QR payload)",
        tag="redemptions",
        auth=("api_key", "terminal"),
        idempotent=True,
        body=REDEEM_BODY,
        responses={201: activity},
        admits_itself=True,  # the redemption statement authenticates (value/redemption.py)
    )
    async def redeem(call: Call) -> Result:
        request, rt = call.request, call.rt
        token_kind, token = credential(request, ("api_key", "terminal"))
        raw = await request.body()
        try:
            body = read_object(raw, request.headers.get("content-type", ""))
            body, invalid = decode_body(body, REDEEM_BODY), None
        except DomainError as exc:  # answered once the database has found the credential good
            body, invalid = None, exc
        redemption = await redemptions.prepare(
            rt.keyring,
            rt.qr_keys,
            call.connect,
            token_kind=token_kind,
            token=token,
            client=client_address(request),
            key=call.idempotency_key,
            fingerprint=idempotency.request_fingerprint(request.method, request.scope["path"], body),
            body=body,
            invalid=invalid,
        )
        return outcome_response(await rt.redemptions.redeem(redemption))

    @endpoint(
        api,
        "POST",
        "/v1/refunds",
        summary="Give back (part of) a redemption",
        tag="redemptions",
        auth=("api_key", "terminal"),
        idempotent=True,
        body={
            "type": "object",
            "required": ["redemption"],
            "additionalProperties": False,
            "properties": {
                "redemption": {"type": "string", "maxLength": 64},
                "amount": AMOUNT,
                "reference": REFERENCE,
            },
        },
        responses={201: activity},
    )
    async def refund(call: Call) -> Result:
        b = call.body
        return 201, await staff_guard(
            call,
            "refund",
            lambda: cards.refund(
                call.conn,
                call.principal,
                redemption_id=b["redemption"],
                amount=b.get("amount"),
                reference=b.get("reference"),
                idempotency_key=call.idempotency_key,
            ),
            amount=b.get("amount"),
            redemption=b["redemption"],
        )

    money_body = {
        "type": "object",
        "required": ["amount"],
        "additionalProperties": False,
        "properties": {"amount": AMOUNT, "currency": CURRENCY, "reference": REFERENCE},
    }
    adjust_body = {
        "type": "object",
        "required": ["amount", "reason"],
        "additionalProperties": False,
        "properties": {
            "amount": SIGNED_AMOUNT,
            "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            "reference": REFERENCE,
        },
    }
    state_body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            "reference": REFERENCE,
        },
    }
    for kind, body, summary in (
        ("load", money_body, "Add value to a card"),
        ("adjust", adjust_body, "Correct a balance, with a reason"),
        ("activate", state_body, "Activate a pending card"),
        ("block", state_body, "Block a card (reversible)"),
        ("unblock", state_body, "Unblock a card"),
        ("deactivate", state_body, "Deactivate a card for good (its balance is written off)"),
    ):
        _register_change(api, kind, body, summary, activity)


def _register_change(
    api: Api, kind: str, body: dict[str, Any], summary: str, activity: dict[str, Any]
) -> None:
    async def change(call: Call) -> Result:
        b = call.body
        amount = b.get("amount")
        if kind == "adjust" and amount == 0:
            from giftcards.core.errors import ValidationError

            raise ValidationError([{"field": "amount", "message": "must not be zero"}])
        return 201, await cards.change(
            call.conn,
            call.principal,
            call.path["card_id"],
            kind,
            amount=amount,
            currency=b.get("currency"),
            reason=b.get("reason"),
            reference=b.get("reference"),
            idempotency_key=call.idempotency_key,
        )

    change.__name__ = f"{kind}_card"
    endpoint(
        api,
        "POST",
        f"/v1/cards/{{card_id}}/{kind}",
        summary=summary,
        tag="cards",
        auth=("api_key",),
        idempotent=True,
        body=body,
        responses={201: activity},
    )(change)


async def _iterate(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line

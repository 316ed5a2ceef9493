"""Gift purchases, gifts, re-gifts, card-page links and customise sessions: what the shop backend calls."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.responses import Response

from giftcards.gifting import card_access, card_art, customise, gift_links, gifts
from giftcards.gifting.gifts import GiftDetails, Purchase
from giftcards.value import ledger
from giftcards.web.calls import Call, Result, endpoint
from giftcards.web.openapi import list_of
from giftcards.web.routing import Api
from giftcards.web.validation import parse_datetime

AMOUNT = {"type": "integer", "minimum": 1, "maximum": ledger.MAX_AMOUNT, "description": "Minor units (fen)"}
CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$", "x-pattern-message": "must be an ISO 4217 code"}
COLOR = {"type": "string", "pattern": "^#[0-9a-f]{6}$", "x-pattern-message": "must be a colour like #8b1e3f"}
ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": "^[A-Za-z0-9_-]+$",
    "x-pattern-message": "must be an id such as dsn_…",
}
OWNER_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": "^[\\x21-\\x7e]+$",
    "x-pattern-message": "must be visible ASCII, e.g. a WeChat openid",
    "description": "The person's opaque id in the shop (e.g. a WeChat openid)",
}
NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 40,
    "pattern": "^[^\\x00-\\x1f\\x7f]+$",
    "x-pattern-message": "must not contain control characters",
}
MESSAGE = {
    "type": "string",
    "maxLength": 200,
    "pattern": "^[^\\x00-\\x09\\x0b-\\x1f\\x7f]*$",
    "x-pattern-message": "must not contain control characters other than line breaks",
    "description": "Any Unicode (Chinese, emoji); always shown escaped, never as markup",
}
DATE_TIME = {"type": "string", "format": "date-time"}
NULLABLE_DATE_TIME = {"type": ["string", "null"], "format": "date-time"}
REFERENCE = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[^\\x00-\\x1f\\x7f]+$",
    "x-pattern-message": "must not contain control characters",
}
GIFT_FIELDS: dict[str, Any] = {
    "sender_name": NAME,
    "recipient_name": NAME,
    "message": MESSAGE,
    "photo_id": ID,
    "opens_at": {**DATE_TIME, "description": "Scheduled delivery: before it the link shows a countdown"},
    "claim_within_hours": {
        "type": "integer",
        "minimum": 1,
        "maximum": 720,
        "description": "After opens_at; an unclaimed gift then goes back to the gifter (default 72)",
    },
}
LIST_LIMIT = {"type": "integer", "minimum": 1, "maximum": 100}
RECIPIENT_OWNER_ID = {
    **OWNER_ID,
    "description": "Optional: the recipient's own id (e.g. their openid); the gift then also waits in "
    "their wallet. The link still works for whoever holds it.",
}


def time_value(value: str | None) -> Any:
    return parse_datetime(value) if value else None


def gift_details(body: dict[str, Any], *, names_required: bool = True) -> GiftDetails:
    return GiftDetails(
        sender_name=body["sender_name"] if names_required else body.get("sender_name", ""),
        recipient_name=body["recipient_name"] if names_required else body.get("recipient_name", ""),
        message=body.get("message", ""),
        photo_id=body.get("photo_id"),
        opens_at=time_value(body.get("opens_at")),
        claim_within_hours=body.get("claim_within_hours", gifts.CLAIM_WITHIN_HOURS_DEFAULT),
        recipient_owner_id=body.get("recipient_owner_id"),
    )


async def png(art: card_art.CardArt, *, width: int = card_art.WIDTH, cache: str = "no-store") -> Response:
    data = await asyncio.to_thread(card_art.render_png, art, width=width)
    return Response(data, media_type="image/png", headers={"Cache-Control": cache})


def register(api: Api) -> None:
    gift = api.schema(
        "Gift",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "gift"},
                "state": {
                    "type": "string",
                    "enum": ["scheduled", "waiting", "claimed", "revoked", "returned"],
                },
                "card": {"oneOf": [{"type": "string"}, {"type": "object"}]},
                "design": {"type": ["string", "null"]},
                "photo": {"type": ["string", "null"]},
                "amount": {"type": "integer"},
                "currency": {"type": "string"},
                "gifter_id": {"type": "string"},
                "recipient_id": {"type": ["string", "null"]},
                "recipient_owner_id": {"type": ["string", "null"]},
                "sender_name": {"type": "string"},
                "recipient_name": {"type": "string"},
                "message": {"type": "string"},
                **{
                    name: {"type": ["string", "null"], "format": "date-time"}
                    for name in ("opens_at", "expires_at", "claimed_at", "revoked_at", "returned_at")
                },
                "reference": {"type": ["string", "null"]},
                "previous_gift": {"type": ["string", "null"]},
                "created_at": {"type": "string", "format": "date-time"},
                "link": {"type": "string", "description": "Only when the gift is made: the link to share"},
                "image_url": {"type": "string", "description": "Only when the gift is made: its picture"},
            },
        },
    )

    @endpoint(
        api,
        "POST",
        "/v1/card_images/preview",
        summary="Render the card picture a gift would have (PNG), before buying",
        tag="gifts",
        auth=("api_key",),
        body={
            "type": "object",
            "required": ["design_id", "amount"],
            "additionalProperties": False,
            "properties": {"design_id": ID, "amount": AMOUNT, **GIFT_FIELDS},
        },
        media_type="image/png",
        responses={200: {"type": "string", "format": "binary"}},
    )
    async def preview(call: Call) -> Result:
        b = call.body
        details = gift_details(b, names_required=False)
        art = await gifts.preview_art(call.conn, call.merchant_id, b["design_id"], b["amount"], details)
        return await png(art)

    @endpoint(
        api,
        "POST",
        "/v1/gift_purchases",
        summary="After payment: issue a card of a design and wrap it as a gift (returns the link to share)",
        tag="gifts",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["design_id", "amount", "gifter_id", "sender_name", "recipient_name"],
            "additionalProperties": False,
            "properties": {
                "design_id": ID,
                "amount": AMOUNT,
                "currency": CURRENCY,
                "gifter_id": OWNER_ID,
                "reference": {**REFERENCE, "description": "Your order or payment id: one gift per reference"},
                "recipient_owner_id": RECIPIENT_OWNER_ID,
                **GIFT_FIELDS,
            },
        },
        responses={201: gift},
        no_store=True,
    )
    async def purchase(call: Call) -> Result:
        b = call.body
        order = Purchase(
            design_id=b["design_id"],
            amount=b["amount"],
            gifter_id=b["gifter_id"],
            details=gift_details(b),
            currency=b.get("currency"),
            reference=b.get("reference"),
        )
        public_url = call.rt.settings.public_url
        return 201, await gifts.purchase(
            call.conn, call.rt.keyring, call.principal, order, public_url=public_url
        )

    @endpoint(
        api,
        "GET",
        "/v1/gifts",
        summary="List gifts, newest first (by gifter, recipient or card)",
        tag="gifts",
        auth=("api_key",),
        query={
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "limit": LIST_LIMIT,
                "starting_after": ID,
                "gifter_id": OWNER_ID,
                "recipient_id": OWNER_ID,
                "card_id": ID,
            },
        },
        responses={200: list_of(gift)},
        no_store=True,
    )
    async def list_gifts(call: Call) -> Result:
        q = call.query
        return 200, await gifts.list_gifts(
            call.conn,
            call.merchant_id,
            gifter_id=q.get("gifter_id"),
            recipient_id=q.get("recipient_id"),
            card_id=q.get("card_id"),
            limit=q.get("limit", gifts.PAGE_LIMIT_DEFAULT),
            starting_after=q.get("starting_after"),
        )

    @endpoint(
        api,
        "GET",
        "/v1/gifts/{gift_id}",
        summary="A gift",
        tag="gifts",
        auth=("api_key",),
        responses={200: gift},
        no_store=True,
    )
    async def get_gift(call: Call) -> Result:
        return 200, await gifts.get(call.conn, call.merchant_id, call.path["gift_id"])

    @endpoint(
        api,
        "GET",
        "/v1/gifts/{gift_id}/link",
        summary="The link of a waiting gift again, for the gifter to share once more",
        tag="gifts",
        auth=("api_key",),
        responses={200: {"type": "object", "properties": {"url": {"type": "string"}}}},
        no_store=True,
    )
    async def gift_link(call: Call) -> Result:
        return 200, await gifts.share_link(
            call.conn,
            call.rt.keyring,
            call.merchant_id,
            call.path["gift_id"],
            public_url=call.rt.settings.public_url,
        )

    @endpoint(
        api,
        "POST",
        "/v1/gifts/{gift_id}/revoke",
        summary="Withdraw an unclaimed gift: the link stops working, the card is the gifter's again",
        tag="gifts",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "additionalProperties": False,
            "properties": {"owner_id": {**OWNER_ID, "description": "If given, must be the gifter"}},
        },
        responses={200: gift},
        no_store=True,
    )
    async def revoke(call: Call) -> Result:
        return 200, await gift_links.revoke(
            call.conn, call.merchant_id, call.path["gift_id"], by_owner=call.body.get("owner_id")
        )

    @endpoint(
        api,
        "POST",
        "/v1/cards/{card_id}/gifts",
        summary="Pass a claimed, unspent card on as a gift (its owner's; the card gets a new code)",
        tag="gifts",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["owner_id", "sender_name", "recipient_name"],
            "additionalProperties": False,
            "properties": {
                "owner_id": OWNER_ID,
                "design_id": ID,
                "recipient_owner_id": RECIPIENT_OWNER_ID,
                **GIFT_FIELDS,
            },
        },
        responses={201: gift},
        no_store=True,
    )
    async def regift(call: Call) -> Result:
        b = call.body
        return 201, await gifts.send_card(
            call.conn,
            call.rt.keyring,
            call.merchant_id,
            call.path["card_id"],
            b["owner_id"],
            gift_details(b),
            design_id=b.get("design_id"),
            public_url=call.rt.settings.public_url,
        )

    @endpoint(
        api,
        "POST",
        "/v1/cards/{card_id}/access_links",
        summary="A card-page link for the card's current owner (e.g. on another device)",
        tag="gifts",
        auth=("api_key",),
        body={
            "type": "object",
            "required": ["owner_id"],
            "additionalProperties": False,
            "properties": {"owner_id": OWNER_ID},
        },
        responses={201: {"type": "object", "properties": {"url": {"type": "string"}}}},
        no_store=True,
    )
    async def access_link(call: Call) -> Result:
        card_id = call.path["card_id"]
        token = await card_access.grant_to_owner(
            call.conn,
            call.rt.keyring,
            call.merchant_id,
            card_id,
            call.body["owner_id"],
            api_key_id=call.principal.id,
        )
        url = card_access.card_url(call.rt.settings.public_url, token)
        return 201, {"object": "card_access_link", "card": card_id, "url": url}

    _register_customise_sessions(api)


def _register_customise_sessions(api: Api) -> None:
    session = api.schema(
        "CustomiseSession",
        {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "customise_session"},
                "state": {"type": "string", "enum": ["open", "used", "expired", "revoked"]},
                "owner_id": {"type": "string"},
                "sender_name": {"type": ["string", "null"]},
                "currency": {"type": "string"},
                "max_amount": {"type": "integer"},
                "reference": {"type": ["string", "null"]},
                "expires_at": DATE_TIME,
                "gift": {"type": ["string", "null"], "description": "The gift it sent, once used"},
                "revoked_at": NULLABLE_DATE_TIME,
                "created_at": DATE_TIME,
                "url": {"type": "string", "description": "Only when made: the link for the gifter"},
            },
        },
    )

    @endpoint(
        api,
        "POST",
        "/v1/customise_sessions",
        summary="A link where the gifter composes and sends one gift of at most max_amount on our page",
        tag="gifts",
        auth=("api_key",),
        idempotent=True,
        body={
            "type": "object",
            "required": ["owner_id", "max_amount"],
            "additionalProperties": False,
            "properties": {
                "owner_id": OWNER_ID,
                "max_amount": {**AMOUNT, "description": "What the gifter paid or authorised"},
                "currency": CURRENCY,
                "sender_name": NAME,
                "reference": REFERENCE,
                "expires_in_minutes": {"type": "integer", "minimum": 5, "maximum": 1440},
            },
        },
        responses={201: session},
        no_store=True,
    )
    async def create_customise_session(call: Call) -> Result:
        b = call.body
        return 201, await customise.create(
            call.conn,
            call.rt.keyring,
            call.principal,
            owner_id=b["owner_id"],
            max_amount=b["max_amount"],
            currency=b.get("currency", "CNY"),
            sender_name=b.get("sender_name"),
            reference=b.get("reference"),
            minutes=b.get("expires_in_minutes", customise.MINUTES_DEFAULT),
            public_url=call.rt.settings.public_url,
        )

    @endpoint(
        api,
        "POST",
        "/v1/customise_sessions/{session_id}/revoke",
        summary="End a customise link at once: it sends no gift and shows none (a gift it sent stays sent)",
        tag="gifts",
        auth=("api_key",),
        responses={200: session},
        no_store=True,
    )
    async def revoke_customise_session(call: Call) -> Result:
        return 200, await customise.revoke(call.conn, call.merchant_id, call.path["session_id"])

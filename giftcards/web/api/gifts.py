"""Gift purchases, gifts, re-gifts, card-page links and customise sessions: what the shop backend calls."""

from __future__ import annotations

import asyncio

from starlette.responses import Response

from giftcards.core.shapes import Page
from giftcards.gifting import card_access, card_art, customise, gift_links, gifts
from giftcards.gifting.gifts import GiftDetails, Purchase
from giftcards.gifting.shapes import (
    CreateCustomiseSession,
    CustomiseSession,
    Gift,
    GiftFields,
    GiftPreview,
    GiftPurchase,
    GiftQuery,
    GiftText,
    Owner,
    Regift,
    RevokeGift,
)
from giftcards.web.api.links import Link
from giftcards.web.calls import BINARY, MERCHANT, Call, Operations, Result
from giftcards.web.routing import Api


def gift_details(body: GiftText, *, recipient_owner_id: str | None = None) -> GiftDetails:
    return GiftDetails(
        sender_name=body.sender_name,
        recipient_name=body.recipient_name,
        message=body.message,
        photo_id=body.photo_id if isinstance(body, GiftFields) else None,
        opens_at=body.opens_at,
        claim_within_hours=body.claim_within_hours,
        recipient_owner_id=recipient_owner_id,
    )


async def png(art: card_art.CardArt, *, width: int = card_art.WIDTH, cache: str = "no-store") -> Response:
    data = await asyncio.to_thread(card_art.render_png, art, width=width)
    return Response(data, media_type="image/png", headers={"Cache-Control": cache})


def register(api: Api) -> None:
    route = Operations(api, tag="gifts", auth=MERCHANT)

    @route.post("/v1/card_images/preview", answer=BINARY, body=GiftPreview, media_type="image/png")
    async def preview(call: Call) -> Result:
        """Render the card picture a gift would have (PNG), before buying"""
        b: GiftPreview = call.body
        art = await gifts.preview_art(call.conn, call.merchant_id, b.design_id, b.amount, gift_details(b))
        return await png(art)

    @route.post("/v1/gift_purchases", created=Gift, body=GiftPurchase, no_store=True)
    async def purchase(call: Call) -> Result:
        """After payment: issue a card of a design and wrap it as a gift (returns the link to share)"""
        b: GiftPurchase = call.body
        order = Purchase(
            design_id=b.design_id,
            amount=b.amount,
            gifter_id=b.gifter_id,
            details=gift_details(b, recipient_owner_id=b.recipient_owner_id),
            currency=b.currency,
            reference=b.reference,
        )
        public_url = call.public_url
        return 201, await gifts.purchase(
            call.conn, call.keyring, call.principal, order, public_url=public_url
        )

    @route.get("/v1/gifts", answer=Page[Gift], query=GiftQuery, no_store=True)
    async def list_gifts(call: Call) -> Result:
        """List gifts, newest first (by gifter, recipient or card)"""
        return 200, await gifts.list_gifts(call.conn, call.merchant_id, **call.filters)

    @route.get("/v1/gifts/{gift_id}", answer=Gift, no_store=True)
    async def get_gift(call: Call) -> Result:
        """A gift"""
        return 200, await gifts.get(call.conn, call.merchant_id, call.path["gift_id"])

    @route.get("/v1/gifts/{gift_id}/link", answer=Link, no_store=True)
    async def gift_link(call: Call) -> Result:
        """The link of a waiting gift again, for the gifter to share once more"""
        return 200, await gifts.share_link(
            call.conn, call.keyring, call.merchant_id, call.path["gift_id"], public_url=call.public_url
        )

    @route.post("/v1/gifts/{gift_id}/revoke", answer=Gift, body=RevokeGift, no_store=True)
    async def revoke(call: Call) -> Result:
        """Withdraw an unclaimed gift: the link stops working, the card is the gifter's again"""
        return 200, await gift_links.revoke(
            call.conn, call.merchant_id, call.path["gift_id"], by_owner=call.body.owner_id
        )

    @route.post("/v1/cards/{card_id}/gifts", created=Gift, body=Regift, no_store=True)
    async def regift(call: Call) -> Result:
        """Pass a claimed, unspent card on as a gift (its owner's; the card gets a new code)"""
        b: Regift = call.body
        return 201, await gifts.send_card(
            call.conn,
            call.keyring,
            call.merchant_id,
            call.path["card_id"],
            b.owner_id,
            gift_details(b, recipient_owner_id=b.recipient_owner_id),
            design_id=b.design_id,
            public_url=call.public_url,
        )

    @route.post("/v1/cards/{card_id}/access_links", created=Link, body=Owner, no_store=True)
    async def access_link(call: Call) -> Result:
        """A card-page link for the card's current owner (e.g. on another device)"""
        card_id = call.path["card_id"]
        token = await card_access.grant_to_owner(
            call.conn,
            call.keyring,
            call.merchant_id,
            card_id,
            call.body.owner_id,
            api_key_id=call.principal.id,
        )
        url = card_access.card_url(call.public_url, token)
        return 201, {"object": "card_access_link", "card": card_id, "url": url}

    _register_customise_sessions(api)


def _register_customise_sessions(api: Api) -> None:
    route = Operations(api, tag="gifts", auth=MERCHANT)

    @route.post(
        "/v1/customise_sessions", created=CustomiseSession, body=CreateCustomiseSession, no_store=True
    )
    async def create_customise_session(call: Call) -> Result:
        """A link where the gifter composes and sends one gift of at most max_amount on our page"""
        b: CreateCustomiseSession = call.body
        return 201, await customise.create(
            call.conn,
            call.keyring,
            call.principal,
            owner_id=b.owner_id,
            max_amount=b.max_amount,
            currency=b.currency,
            sender_name=b.sender_name,
            reference=b.reference,
            minutes=b.expires_in_minutes,
            public_url=call.public_url,
        )

    @route.post("/v1/customise_sessions/{session_id}/revoke", answer=CustomiseSession, no_store=True)
    async def revoke_customise_session(call: Call) -> Result:
        """End a customise link at once: it sends no gift and shows none (a gift it sent stays sent)"""
        return 200, await customise.revoke(call.conn, call.merchant_id, call.path["session_id"])

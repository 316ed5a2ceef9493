"""The JSON API of the people a link was given to: a gift's recipient, a card's owner, a gifter on the
customise page. Each is authorised by the secret in its path alone (the access log shows only the
prefix of these paths; see routing.SECRET_PARAMETERS), and answers 404 alike for anything unknown.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from msgspec import UNSET, Struct, UnsetType

from giftcards.core.shapes import Timestamp
from giftcards.gifting import card_access, customise, gift_links, gifts
from giftcards.gifting.shapes import CardPageQrQuery, ComposedGift, GiftPreview, Owner
from giftcards.qr import images as qr
from giftcards.web.api.designs import UPLOAD, read_image
from giftcards.web.api.gifts import gift_details, png
from giftcards.web.api.links import CardPageLink, QrPayload, ShownCode
from giftcards.web.calls import BINARY, Call, Operations, Result, acquire
from giftcards.web.routing import Api

_OBJECT = {"type": "object"}


class GiftLink(Struct, kw_only=True):
    """What a gift link shows (gifting/gift_links.link_view builds it): when it opens, and once it is
    open the gift itself."""

    object: Literal["gift_link"] = "gift_link"
    state: Literal["scheduled", "waiting", "claimed", "revoked", "returned"]
    opens_at: Timestamp
    seconds_until_open: int | UnsetType = UNSET  # while scheduled
    amount: int | UnsetType = UNSET  # once open
    message: str | UnsetType | None = UNSET  # once open


def register(api: Api) -> None:
    route = Operations(api, tag="customise")

    @route.get("/v1/gift_links/{secret}", tag="gift links", answer=GiftLink, no_store=True)
    async def view_gift_link(call: Call) -> Result:
        """What a gift link shows: the gift once it is open, else when it opens"""
        row = await gift_links.open_link(call.conn, call.keyring, call.path["secret"])
        return 200, gift_links.link_view(row, await gifts.design_of(call.conn, row))

    @route.post(
        "/v1/gift_links/{secret}/claim", tag="gift links", answer=CardPageLink, body=Owner, no_store=True
    )
    async def claim_gift(call: Call) -> Result:
        """Claim a gift: the card becomes the claimant's, with a card-page link only they get"""
        return 200, await gift_links.claim(
            call.conn, call.keyring, call.path["secret"], call.body.owner_id, public_url=call.public_url
        )

    @route.get("/v1/card_pages/{token}", tag="card pages", answer=_OBJECT, no_store=True)
    async def view_card_page(call: Call) -> Result:
        """The owner's card: balance, expiry, the gift it came as, spending history"""
        access = await card_access.resolve(call.conn, call.keyring, call.path["token"])
        return 200, await card_access.page(call.conn, access)

    @route.get(
        "/v1/card_pages/{token}/qr", tag="card pages", answer=QrPayload, query=CardPageQrQuery, no_store=True
    )
    async def card_page_qr(call: Call) -> Result:
        """A fresh rotating QR for the till (good for its 30 s step and the next); fetch every 20 s"""
        access = await card_access.resolve(call.conn, call.keyring, call.path["token"])
        answer: dict[str, Any] = await card_access.rotating_qr(call.conn, call.rt.qr_keys, access)
        kind = call.query.image
        if kind == "svg":
            answer["image"] = _data_url("image/svg+xml", qr.render_svg(answer["payload"]))
        elif kind == "png":
            answer["image"] = _data_url("image/png", qr.render_png(answer["payload"]))
        return 200, answer

    @route.get("/v1/card_pages/{token}/code", tag="card pages", answer=ShownCode, no_store=True)
    async def card_page_code(call: Call) -> Result:
        """The card's code, to type at a till or on a website"""
        access = await card_access.resolve(call.conn, call.keyring, call.path["token"])
        code = await card_access.reveal_code(call.conn, call.keyring, access)
        return 200, {"object": "card_code", "code": code}

    @route.get("/v1/customise/{token}", answer=_OBJECT, no_store=True)
    async def view_customise(call: Call) -> Result:
        """A customise session: the designs and amounts on offer, or the gift once it is sent"""
        row = await customise.resolve(call.conn, call.keyring, call.path["token"])
        return 200, await customise.page(call.conn, call.keyring, row, public_url=call.public_url)

    @route.post("/v1/customise/{token}/photos", created=_OBJECT, **UPLOAD, uses_db=False, no_store=True)
    async def customise_photo(call: Call) -> Result:
        """Upload the gifter's own cover photo (raw JPEG, PNG or WebP bytes)"""
        rt, token = call.rt, call.path["token"]
        async with acquire(rt) as conn:  # a bogus link is answered before its body is read or decoded
            customise.require_open(await customise.resolve(conn, rt.keyring, token))
        clean = await read_image(call)
        async with acquire(rt) as conn:
            return 201, await customise.upload_photo(conn, rt.keyring, token, clean)

    @route.post("/v1/customise/{token}/preview", answer=BINARY, body=GiftPreview, media_type="image/png")
    async def customise_preview(call: Call) -> Result:
        """The picture of the gift being composed (PNG)"""
        b: GiftPreview = call.body
        art = await customise.preview(
            call.conn,
            call.keyring,
            call.path["token"],
            design_id=b.design_id,
            amount=b.amount,
            details=gift_details(b),
        )
        return await png(art)

    @route.post("/v1/customise/{token}/send", created=_OBJECT, body=ComposedGift, no_store=True)
    async def customise_send(call: Call) -> Result:
        """Send the composed gift (once per link): the answer holds the link to share"""
        b: ComposedGift = call.body
        return 201, await customise.complete(
            call.conn,
            call.keyring,
            call.path["token"],
            design_id=b.design_id,
            amount=b.amount,
            details=gift_details(b),
            public_url=call.public_url,
        )


def _data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"

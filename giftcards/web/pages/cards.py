"""The pages people open from a link: the gift (/g/…), the owner's card (/c/…), the customise page
(/customise/…), their card pictures, and the pages' scripts and styles.

Every page is server-rendered with autoescaping (messages and names are text, never markup) under a CSP
without inline script or style; the scripts only fetch JSON from the API of api_recipients. A bad or
spent link gets a plain page with one message, the same for anything unknown; a customise link the shop
withdrew (or whose API key it revoked) says so, so the gifter knows to ask the shop for a new one.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from giftcards.core.errors import DomainError
from giftcards.gifting import card_access, customise, designs, gift_links, gifts
from giftcards.web.api.gifts import png
from giftcards.web.calls import TEXT, Call, Operations, Result
from giftcards.web.routing import Api
from giftcards.web.templating import render

THUMBNAIL_WIDTH = 240


def _date(value: str | None) -> str | None:
    return value[:10] if value else None


def _when(value: str) -> str:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def _invalid(request: Request, exc: DomainError) -> Response:
    withdrawn = exc.code == "session_revoked"
    return render(request, "gift_message.html", status=exc.status, withdrawn=withdrawn)


def register(api: Api) -> None:
    # An unknown or spent link gets a page too (404, text/html), not a problem document.
    route = Operations(api, tag="pages")
    html = {"media_type": "text/html", "responses": {200: {"type": "string"}, 404: {"type": "string"}}}
    picture = {"media_type": "image/png", "responses": {200: {"type": "string", "format": "binary"}}}

    @route.get("/g/{secret}", **html)
    async def gift_page(call: Call) -> Result:
        """The gift page a link opens"""
        secret = call.path["secret"]
        try:
            row = await gift_links.open_link(call.conn, call.keyring, secret)
        except DomainError as exc:
            return _invalid(call.request, exc)
        view = gift_links.link_view(row, await gifts.design_of(call.conn, row))
        owner = call.request.query_params.get("owner", "")
        return render(
            call.request,
            "gift.html",
            gift=view,
            secret=secret,
            owner=owner[:128],
            opens_text=_when(view["opens_at"]),
        )

    @route.get("/g/{secret}/card.png", **picture)
    async def gift_picture(call: Call) -> Result:
        """The picture of an open gift"""
        row = await gift_links.open_link(call.conn, call.keyring, call.path["secret"])
        if gifts.effective_state(row, row["now"]) != "waiting":  # a countdown, not the card; or gone
            raise DomainError("gift_not_found", "this gift cannot be shown")
        return await png(await gifts.art_for(call.conn, row), cache="private, max-age=300")

    @route.get("/c/{token}", **html)
    async def card_page(call: Call) -> Result:
        """The owner's card page"""
        token = call.path["token"]
        try:
            access = await card_access.resolve(call.conn, call.keyring, token)
        except DomainError as exc:
            return _invalid(call.request, exc)
        page = await card_access.page(call.conn, access)
        card = page["card"]
        history = [
            {
                "type": entry["type"],
                "amount_text": designs.format_money(entry["amount"], entry["currency"]),
                "when": _when(entry["created_at"]),
            }
            for entry in page["history"]
            if entry["type"] != "issue"
        ]
        return render(
            call.request,
            "card.html",
            page=page,
            token=token,
            balance_text=designs.format_money(card["balance"], card["currency"]),
            expiry_text=_date(card["expires_at"]),
            history=history,
        )

    @route.get("/c/{token}/card.png", **picture)
    async def card_picture(call: Call) -> Result:
        """The picture of the owner's card"""
        access = await card_access.resolve(call.conn, call.keyring, call.path["token"])
        return await png(await card_access.art(call.conn, access), cache="private, max-age=300")

    @route.get("/customise/{token}", responses={200: TEXT, 404: TEXT, 409: TEXT}, media_type="text/html")
    async def customise_page(call: Call) -> Result:
        """The page where a gifter composes a gift"""
        token = call.path["token"]
        try:
            row = await customise.resolve(call.conn, call.keyring, token)
        except DomainError as exc:
            return _invalid(call.request, exc)
        view = await customise.page(call.conn, call.keyring, row, public_url=call.public_url)
        for design in view["designs"]:
            design["amount_options"] = [
                {"value": amount, "text": designs.format_money(amount, design["currency"])}
                for amount in design["amounts"]
            ]
        return render(call.request, "customise.html", session=view, token=token)

    @route.get("/customise/{token}/designs/{design_id}.png", **picture)
    async def design_thumbnail(call: Call) -> Result:
        """A design's thumbnail on the customise page"""
        art = await customise.design_art(call.conn, call.keyring, call.path["token"], call.path["design_id"])
        return await png(art, width=THUMBNAIL_WIDTH, cache="private, max-age=300")

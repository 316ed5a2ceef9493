"""The owner's "add to WeChat card wallet" page (/c/{token}/wechat, linked from the card page): a WeChat
card QR code to scan, and the signed cardExt for wx.addCard when the page runs inside WeChat."""

from __future__ import annotations

from starlette.responses import Response

from giftcards.gifting import card_access
from giftcards.qr import images as qr
from giftcards.web.api.wechat import ANY_OBJECT, PLAIN, TAG, wechat_for
from giftcards.web.calls import TEXT, Call, Operations, Result
from giftcards.web.routing import Api
from giftcards.web.templating import render
from giftcards.wechat import add_card


def register(api: Api) -> None:
    route = Operations(api, tag=TAG)

    @route.get("/c/{token}/wechat", answer=TEXT, media_type="text/html")
    async def card_page_wechat(call: Call) -> Result:
        """The owner's page for adding the card to the WeChat card wallet"""
        access = await card_access.resolve(call.conn, call.keyring, call.path["token"])
        ready = await card_access.wechat_ready(call.conn, access.merchant_id)
        return render(call.request, "wechat_add.html", token=call.path["token"], ready=ready)

    @route.get(
        "/c/{token}/wechat/qr.svg", answer=TEXT, media_type="image/svg+xml", outbound=True, no_store=True
    )
    async def card_page_wechat_qr(call: Call) -> Result:
        """The WeChat card QR code of the owner's card: scanning it in WeChat adds the card"""
        access = await _card(call)
        async with wechat_for(call, access.merchant_id) as wechat:
            answer = await add_card.card_qrcode(
                call.connect, wechat, call.keyring, access.merchant_id, access.card_id
            )
        return Response(qr.render_svg(answer["url"]), media_type="image/svg+xml", headers=PLAIN)

    @route.post("/c/{token}/wechat/card_ext", answer=ANY_OBJECT, outbound=True, no_store=True)
    async def card_page_wechat_card_ext(call: Call) -> Result:
        """cardId and signed cardExt for wx.addCard, for the owner's page inside WeChat"""
        access = await _card(call)
        async with wechat_for(call, access.merchant_id) as wechat:
            return 200, await add_card.card_ext(
                call.connect, wechat, call.keyring, access.merchant_id, access.card_id
            )


async def _card(call: Call) -> card_access.Access:
    async with call.connect() as conn:
        return await card_access.resolve(conn, call.keyring, call.path["token"])

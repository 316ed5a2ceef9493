# ruff: noqa: RUF001  (full-width punctuation is correct in the Chinese strings)
"""The wallet page a session link opens (/w/{token}), the card and gift pictures it shows, and its script
and style.

The page is a shell: the script reads everything from the wallet API (api_wallet) with the link's token as
its Bearer credential and builds the lists with DOM text nodes, never markup. Under the strict CSP of
`templating` it carries no inline script or style; its labels travel as a JSON data block. A link that is
unknown, revoked or expired gets one friendly page.
"""

from __future__ import annotations

from giftcards.core.errors import DomainError
from giftcards.wallet import gifts as wallet_gifts
from giftcards.wallet import holders as wallet
from giftcards.web.api.gifts import png
from giftcards.web.calls import Call, Result, endpoint
from giftcards.web.routing import Api
from giftcards.web.templating import language, render

THUMBNAIL_WIDTH = 240

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": "My cards",
        "invalid": "This wallet link is not valid or has expired. Open your wallet again from the shop.",
        "expired": "This wallet link has expired. Open your wallet again from the shop.",
        "total": "You can spend",
        "nothing_to_spend": "Nothing to spend yet.",
        "all": "All",
        "active": "Active",
        "used_up": "Used up",
        "expired_tab": "Expired",
        "deactivated": "Cancelled",
        "blocked": "Blocked",
        "pending": "Not active yet",
        "no_cards": "No cards here.",
        "more": "Show more",
        "expires": "Valid until",
        "no_expiry": "No expiry",
        "from": "From",
        "to": "To",
        "of": "of",
        "open": "Open & pay",
        "details": "Details",
        "send_gift": "Give as a gift",
        "add_wechat": "Add to WeChat",
        "waiting_title": "Gifts for you",
        "claim": "Accept the gift",
        "claimed_notice": "The card is yours now.",
        "opens_at": "Opens at",
        "claim_by": "Accept by",
        "sent_title": "Gifts you sent",
        "no_sent": "You have not sent any gifts yet.",
        "gift_scheduled": "Scheduled",
        "gift_waiting": "Waiting to be accepted",
        "gift_claimed": "Accepted",
        "gift_revoked": "Withdrawn",
        "gift_returned": "Returned to you",
        "revoke": "Withdraw",
        "revoke_confirm": "Tap again to withdraw",
        "share": "Share the link",
        "send_title": "Give this card as a gift",
        "recipient_name": "Recipient's name",
        "sender_name": "Your name",
        "message": "Message",
        "send": "Send",
        "cancel": "Cancel",
        "share_title": "Share this link with the recipient:",
        "copy": "Copy",
        "copied": "Copied",
        "close": "Close",
        "error": "Something went wrong:",
    },
    "zh": {
        "title": "我的卡包",
        "invalid": "此卡包链接无效或已过期，请从商城重新打开卡包。",
        "expired": "此卡包链接已过期，请从商城重新打开卡包。",
        "total": "可用余额",
        "nothing_to_spend": "暂无可用余额。",
        "all": "全部",
        "active": "可用",
        "used_up": "已用完",
        "expired_tab": "已过期",
        "deactivated": "已作废",
        "blocked": "已冻结",
        "pending": "未激活",
        "no_cards": "这里还没有卡。",
        "more": "加载更多",
        "expires": "有效期至",
        "no_expiry": "长期有效",
        "from": "来自",
        "to": "致",
        "of": "/",
        "open": "打开付款",
        "details": "详情",
        "send_gift": "转赠",
        "add_wechat": "添加到微信卡包",
        "waiting_title": "待领取的礼物",
        "claim": "领取礼物",
        "claimed_notice": "这张卡已归你所有。",
        "opens_at": "开启时间",
        "claim_by": "领取截止",
        "sent_title": "我送出的礼物",
        "no_sent": "你还没有送出礼物。",
        "gift_scheduled": "定时送达",
        "gift_waiting": "等待领取",
        "gift_claimed": "已领取",
        "gift_revoked": "已撤回",
        "gift_returned": "已退回",
        "revoke": "撤回",
        "revoke_confirm": "再点一次确认撤回",
        "share": "分享链接",
        "send_title": "把这张卡送给朋友",
        "recipient_name": "收礼人姓名",
        "sender_name": "你的名字",
        "message": "祝福语",
        "send": "发送",
        "cancel": "取消",
        "share_title": "把这个链接分享给收礼人：",
        "copy": "复制",
        "copied": "已复制",
        "close": "关闭",
        "error": "出错了：",
    },
}


def register(api: Api) -> None:
    picture = {"media_type": "image/png", "responses": {200: {"type": "string", "format": "binary"}}}

    @endpoint(
        api,
        "GET",
        "/w/{token}",
        summary="The wallet page a session link opens",
        tag="pages",
        media_type="text/html",
        responses={200: {"type": "string"}, 404: {"type": "string"}},
    )
    async def wallet_page(call: Call) -> Result:
        texts = TEXTS[language(call.request)]
        token = call.path["token"]
        try:
            holder = await wallet.resolve(call.conn, call.rt.keyring, token)
        except DomainError:
            return render(call.request, "wallet.html", status=404, t=texts, invalid=True)
        return render(call.request, "wallet.html", t=texts, invalid=False, token=token, holder=holder)

    @endpoint(
        api, "GET", "/w/{token}/cards/{card_id}.png", summary="A held card's picture", tag="pages", **picture
    )
    async def wallet_card_picture(call: Call) -> Result:
        holder = await _holder(call)
        art = await wallet.card_picture(call.conn, holder, call.path["card_id"])
        return await png(art, width=THUMBNAIL_WIDTH, cache="private, max-age=300")

    @endpoint(
        api,
        "GET",
        "/w/{token}/gifts/{gift_id}.png",
        summary="The picture of a gift sent, or of an open one waiting for the wallet's owner",
        tag="pages",
        **picture,
    )
    async def wallet_gift_picture(call: Call) -> Result:
        holder = await _holder(call)
        art = await wallet_gifts.picture(call.conn, holder, call.path["gift_id"])
        return await png(art, width=THUMBNAIL_WIDTH, cache="private, max-age=300")


async def _holder(call: Call) -> wallet.Holder:
    """The session a picture's path names; a bad one is a missing picture (its path is no Bearer)."""
    try:
        return await wallet.resolve(call.conn, call.rt.keyring, call.path["token"])
    except DomainError:
        raise DomainError("not_found") from None

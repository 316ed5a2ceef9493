# ruff: noqa: RUF001  (full-width punctuation is correct in the Chinese strings)
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
from giftcards.web.calls import Call, Result, endpoint
from giftcards.web.routing import Api
from giftcards.web.templating import language, render

THUMBNAIL_WIDTH = 240

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "gift_title": "A gift for you",
        "from": "From",
        "to": "To",
        "claim_help": "Enter your id to keep this card",
        "owner_label": "Your id",
        "claim": "Claim the card",
        "opens_in": "Your gift opens in",
        "opens_at": "Opens at",
        "claimed": "This gift has already been claimed.",
        "revoked": "The sender withdrew this gift.",
        "returned": "This gift was not claimed in time and went back to the sender.",
        "invalid": "This link is not valid (any more).",
        "withdrawn": "The shop has withdrawn this link. Ask the shop for a new one.",
        "balance": "Balance",
        "expires": "Valid until",
        "no_expiry": "No expiry",
        "state": "State",
        "qr_hint": "Show this code at the till. It changes every 30 seconds.",
        "show_code": "Show the card code",
        "add_wechat": "Add to WeChat card wallet",
        "history": "History",
        "no_history": "Nothing spent yet.",
        "not_payable": "This card cannot be used now",
        "send_gift": "Send a gift card",
        "design": "Design",
        "left": "left",
        "amount": "Amount",
        "other_amount": "Other amount",
        "recipient_name": "Recipient's name",
        "sender_name": "Your name",
        "message": "Message",
        "photo": "Your own cover photo (optional)",
        "schedule": "Deliver at (optional)",
        "preview": "Preview",
        "send": "Send",
        "sent": "Sent! Share this link with the recipient:",
        "sent_state": "The gift you sent is",
        "no_designs": "Nothing is on sale right now.",
    },
    "zh": {
        "gift_title": "送你一份礼物",
        "from": "来自",
        "to": "致",
        "claim_help": "输入你的账号以领取这张卡",
        "owner_label": "你的账号",
        "claim": "领取礼品卡",
        "opens_in": "礼物将在以下时间后开启",
        "opens_at": "开启时间",
        "claimed": "这份礼物已被领取。",
        "revoked": "赠送者已撤回这份礼物。",
        "returned": "这份礼物未在期限内领取，已退回赠送者。",
        "invalid": "此链接无效或已失效。",
        "withdrawn": "商家已停用此链接，请向商家索取新的链接。",
        "balance": "余额",
        "expires": "有效期至",
        "no_expiry": "长期有效",
        "state": "状态",
        "qr_hint": "在收银台出示此码，每30秒更新一次。",
        "show_code": "显示卡号",
        "add_wechat": "添加到微信卡包",
        "history": "消费记录",
        "no_history": "尚无消费。",
        "not_payable": "此卡当前不可使用",
        "send_gift": "赠送礼品卡",
        "design": "卡面",
        "left": "剩余",
        "amount": "金额",
        "other_amount": "其他金额",
        "recipient_name": "收礼人姓名",
        "sender_name": "你的名字",
        "message": "祝福语",
        "photo": "自定义封面照片（可选）",
        "schedule": "定时送达（可选）",
        "preview": "预览",
        "send": "发送",
        "sent": "已发送！把这个链接分享给收礼人：",
        "sent_state": "你送出的礼物状态：",
        "no_designs": "暂无在售卡面。",
    },
}
ENTRY_LABELS = {
    "en": {
        "redeem": "Spent",
        "refund": "Refunded",
        "load": "Topped up",
        "adjust": "Adjusted",
        "expire": "Expired",
        "activate": "Activated",
        "block": "Blocked",
        "unblock": "Unblocked",
        "deactivate": "Deactivated",
    },
    "zh": {
        "redeem": "消费",
        "refund": "退款",
        "load": "充值",
        "adjust": "调整",
        "expire": "过期",
        "activate": "激活",
        "block": "冻结",
        "unblock": "解冻",
        "deactivate": "停用",
    },
}


def _date(value: str | None) -> str | None:
    return value[:10] if value else None


def _when(value: str) -> str:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")


def _invalid(request: Request, exc: DomainError) -> Response:
    texts = TEXTS[language(request)]
    message = texts["withdrawn"] if exc.code == "session_revoked" else texts["invalid"]
    return render(request, "gift_message.html", status=exc.status, t=texts, message=message)


def register(api: Api) -> None:
    # An unknown or spent link gets a page too (404, text/html), not a problem document.
    html = {"media_type": "text/html", "responses": {200: {"type": "string"}, 404: {"type": "string"}}}
    picture = {"media_type": "image/png", "responses": {200: {"type": "string", "format": "binary"}}}

    @endpoint(api, "GET", "/g/{secret}", summary="The gift page a link opens", tag="pages", **html)
    async def gift_page(call: Call) -> Result:
        secret = call.path["secret"]
        try:
            row = await gift_links.open_link(call.conn, call.rt.keyring, secret)
        except DomainError as exc:
            return _invalid(call.request, exc)
        view = gift_links.link_view(row, await gifts.design_of(call.conn, row))
        texts = TEXTS[language(call.request)]
        owner = call.request.query_params.get("owner", "")
        return render(
            call.request,
            "gift.html",
            t=texts,
            gift=view,
            secret=secret,
            owner=owner[:128],
            opens_text=_when(view["opens_at"]),
        )

    @endpoint(
        api, "GET", "/g/{secret}/card.png", summary="The picture of an open gift", tag="pages", **picture
    )
    async def gift_picture(call: Call) -> Result:
        row = await gift_links.open_link(call.conn, call.rt.keyring, call.path["secret"])
        if gifts.effective_state(row, row["now"]) != "waiting":  # a countdown, not the card; or gone
            raise DomainError("gift_not_found", "this gift cannot be shown")
        return await png(await gifts.art_for(call.conn, row), cache="private, max-age=300")

    @endpoint(api, "GET", "/c/{token}", summary="The owner's card page", tag="pages", **html)
    async def card_page(call: Call) -> Result:
        token = call.path["token"]
        try:
            access = await card_access.resolve(call.conn, call.rt.keyring, token)
        except DomainError as exc:
            return _invalid(call.request, exc)
        page = await card_access.page(call.conn, access)
        lang = language(call.request)
        card = page["card"]
        history = [
            {
                "label": ENTRY_LABELS[lang].get(entry["type"], entry["type"]),
                "amount_text": designs.format_money(entry["amount"], entry["currency"]),
                "when": _when(entry["created_at"]),
            }
            for entry in page["history"]
            if entry["type"] != "issue"
        ]
        return render(
            call.request,
            "card.html",
            t=TEXTS[lang],
            page=page,
            token=token,
            balance_text=designs.format_money(card["balance"], card["currency"]),
            expiry_text=_date(card["expires_at"]),
            history=history,
        )

    @endpoint(
        api, "GET", "/c/{token}/card.png", summary="The picture of the owner's card", tag="pages", **picture
    )
    async def card_picture(call: Call) -> Result:
        access = await card_access.resolve(call.conn, call.rt.keyring, call.path["token"])
        return await png(await card_access.art(call.conn, access), cache="private, max-age=300")

    @endpoint(
        api,
        "GET",
        "/customise/{token}",
        summary="The page where a gifter composes a gift",
        tag="pages",
        media_type="text/html",
        # A withdrawn link's page answers as its problem would (409, session_revoked).
        responses={200: {"type": "string"}, 404: {"type": "string"}, 409: {"type": "string"}},
    )
    async def customise_page(call: Call) -> Result:
        token = call.path["token"]
        try:
            row = await customise.resolve(call.conn, call.rt.keyring, token)
        except DomainError as exc:
            return _invalid(call.request, exc)
        view = await customise.page(call.conn, call.rt.keyring, row, public_url=call.rt.settings.public_url)
        for design in view["designs"]:
            design["amount_options"] = [
                {"value": amount, "text": designs.format_money(amount, design["currency"])}
                for amount in design["amounts"]
            ]
        return render(
            call.request, "customise.html", t=TEXTS[language(call.request)], session=view, token=token
        )

    @endpoint(
        api,
        "GET",
        "/customise/{token}/designs/{design_id}.png",
        summary="A design's thumbnail on the customise page",
        tag="pages",
        **picture,
    )
    async def design_thumbnail(call: Call) -> Result:
        art = await customise.design_art(
            call.conn, call.rt.keyring, call.path["token"], call.path["design_id"]
        )
        return await png(art, width=THUMBNAIL_WIDTH, cache="private, max-age=300")

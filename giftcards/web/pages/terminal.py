"""The store terminal page (GET /terminal) and its script and stylesheet.

One page drives the whole flow in the browser through the JSON API: enrol with the one-time code (the
token is kept in localStorage and sent as a bearer token, never in a URL), scan or type, redeem, refund.
The strict CSP allows no inline script or style, so both are files served by declared endpoints; the
labels reach the script as a JSON data block, which the browser never executes.
"""

# Chinese labels use full-width punctuation, as Chinese text should.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio

from starlette.responses import Response

from giftcards.core import ids
from giftcards.core.errors import DomainError
from giftcards.gifting import card_art, designs, images
from giftcards.value import cards
from giftcards.web.calls import Call, Result, endpoint
from giftcards.web.routing import Api
from giftcards.web.templating import language, render

THUMBNAIL_WIDTH = 240

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Gift card terminal",
        "enrol_heading": "Set up this terminal",
        "enrol_hint": "Type the enrollment code from the back office.",
        "enrol_code": "Enrollment code",
        "enrol_button": "Enrol",
        "scan_label": "Scan a QR code or type a card code",
        "scan_placeholder": "Scan or type, then Enter",
        "camera": "Camera",
        "lookup": "Look up",
        "balance": "Balance",
        "currency": "Currency",
        "expires": "Expires",
        "never": "never",
        "state": "State",
        "amount": "Amount to take",
        "full_balance": "Full balance",
        "continue": "Continue",
        "cancel": "Cancel",
        "confirm_heading": "Confirm",
        "confirm_take": "Take {amount} from card ···{last4}",
        "confirm": "Confirm",
        "block": "Block card",
        "confirm_block": "Block card ···{last4}? It cannot be used until the back office unblocks it.",
        "blocked_done": "The card is blocked.",
        "receipt": "Receipt",
        "taken": "Amount taken",
        "left": "Balance left",
        "remainder": "Still to pay",
        "reference": "Reference",
        "new_sale": "Next customer",
        "today": "Today's redemptions",
        "none_today": "No redemptions yet today.",
        "refund": "Refund",
        "refunded": "Refunded",
        "confirm_refund": "Give back {amount} to card ···{last4}",
        "refund_done": "Refund done",
        "working": "Working…",
        "code_progress": "{count} of 20 symbols",
        "code_ok": "Code looks right",
        "code_typo": "This code has a typo: check it again",
        "code_bad_char": "Only the letters and digits printed on the card",
        "state_active": "active",
        "state_pending": "not activated",
        "state_blocked": "blocked",
        "state_deactivated": "deactivated",
        "state_expired": "expired",
        "role_clerk": "clerk",
        "role_manager": "manager",
        "forget": "Unenrol this device",
        "amount_invalid": "Enter an amount like 12.50",
        "err_invalid_code": "No card matches this code. Check it and try again.",
        "err_invalid_qr_payload": "This QR code is not a valid gift card. Ask for a fresh one.",
        "err_card_expired": "This card has expired.",
        "err_card_blocked": "This card is blocked.",
        "err_card_deactivated": "This card is no longer valid.",
        "err_card_not_active": "This card has not been activated yet.",
        "err_insufficient_funds": "Not enough on the card: it holds {balance}.",
        "take_what_is_there": "Take {balance} now",
        "err_store_limit_exceeded": "Above this terminal's limit of {limit}: a manager must do it.",
        "err_manager_required": "Only a manager terminal may do this.",
        "err_refund_not_allowed": "This redemption was made at another store.",
        "err_refund_exceeds_redemption": "This redemption has already been refunded.",
        "err_rate_limited": "Too many wrong codes. Wait {seconds} seconds.",
        "err_unauthenticated": "This terminal is no longer enrolled. Enrol it again.",
        "err_invalid_enrollment_code": "That code is wrong, used or expired. Ask for a new one.",
        "err_currency_mismatch": "The card is in another currency.",
        "err_network": "No connection. Tap again: the same request is retried, never charged twice.",
        "err_other": "Something went wrong ({code}).",
    },
    "zh": {
        "title": "礼品卡核销终端",
        "enrol_heading": "设置此终端",
        "enrol_hint": "请输入后台提供的注册码。",
        "enrol_code": "注册码",
        "enrol_button": "注册",
        "scan_label": "扫描二维码或输入卡号",
        "scan_placeholder": "扫描或输入后按回车",
        "camera": "摄像头",
        "lookup": "查询",
        "balance": "余额",
        "currency": "币种",
        "expires": "有效期至",
        "never": "长期有效",
        "state": "状态",
        "amount": "核销金额",
        "full_balance": "全部余额",
        "continue": "继续",
        "cancel": "取消",
        "confirm_heading": "确认",
        "confirm_take": "从尾号 {last4} 的卡中扣除 {amount}",
        "confirm": "确认核销",
        "block": "冻结此卡",
        "confirm_block": "冻结尾号 {last4} 的卡？解冻前无法使用。",
        "blocked_done": "此卡已冻结。",
        "receipt": "核销凭证",
        "taken": "已扣金额",
        "left": "剩余余额",
        "remainder": "仍需支付",
        "reference": "流水号",
        "new_sale": "下一位顾客",
        "today": "今日核销",
        "none_today": "今天还没有核销记录。",
        "refund": "退款",
        "refunded": "已退款",
        "confirm_refund": "向尾号 {last4} 的卡退回 {amount}",
        "refund_done": "退款完成",
        "working": "处理中…",
        "code_progress": "已输入 {count}/20 位",
        "code_ok": "卡号格式正确",
        "code_typo": "卡号有误，请再核对一次",
        "code_bad_char": "只能输入卡上印的字母和数字",
        "state_active": "可用",
        "state_pending": "未激活",
        "state_blocked": "已冻结",
        "state_deactivated": "已作废",
        "state_expired": "已过期",
        "role_clerk": "店员",
        "role_manager": "店长",
        "forget": "注销此设备",
        "amount_invalid": "请输入金额，例如 12.50",
        "err_invalid_code": "没有与此卡号匹配的卡，请核对后重试。",
        "err_invalid_qr_payload": "此二维码不是有效的礼品卡，请让顾客刷新。",
        "err_card_expired": "此卡已过期。",
        "err_card_blocked": "此卡已被冻结。",
        "err_card_deactivated": "此卡已作废。",
        "err_card_not_active": "此卡尚未激活。",
        "err_insufficient_funds": "余额不足：卡内仅有 {balance}。",
        "take_what_is_there": "先扣除 {balance}",
        "err_store_limit_exceeded": "超过本终端单笔上限 {limit}，请店长处理。",
        "err_manager_required": "只有店长终端可以执行此操作。",
        "err_refund_not_allowed": "这笔核销不是在本店完成的。",
        "err_refund_exceeds_redemption": "这笔核销已经退过款了。",
        "err_rate_limited": "错误次数过多，请等待 {seconds} 秒。",
        "err_unauthenticated": "此终端已失效，请重新注册。",
        "err_invalid_enrollment_code": "注册码错误、已使用或已过期，请重新获取。",
        "err_currency_mismatch": "此卡币种不同。",
        "err_network": "网络连接失败。请再点一次：会重试同一笔请求，不会重复扣款。",
        "err_other": "出现错误（{code}）。",
    },
}


def register(api: Api) -> None:
    @endpoint(
        api,
        "GET",
        "/terminal",
        summary="The store terminal page",
        tag="pages",
        uses_db=False,
        media_type="text/html",
        responses={200: {"type": "string"}},
    )
    async def terminal_page(call: Call) -> Result:
        labels = LABELS[language(call.request)]
        return render(call.request, "terminal.html", t=labels, messages=labels)

    @endpoint(
        api,
        "GET",
        "/v1/terminal/cards/{card_id}/thumbnail.png",
        summary="A card's design as a small picture, for the terminal page",
        tag="terminal",
        auth=("terminal", "api_key"),
        media_type="image/png",
        responses={200: {"type": "string"}},
    )
    async def terminal_card_thumbnail(call: Call) -> Result:
        if not ids.is_id(call.path["card_id"], "card"):
            raise DomainError("card_not_found", "no such card")
        card = await cards.get(call.conn, call.merchant_id, call.path["card_id"])
        design = await designs.fetch(call.conn, call.merchant_id, card.design_id) if card.design_id else None
        cover = (
            await images.data_of(call.conn, call.merchant_id, design["cover_image_id"]) if design else None
        )
        art = designs.art(design, amount=card.initial_amount, currency=card.currency, cover=cover)
        png = await asyncio.to_thread(card_art.render_png, art, width=THUMBNAIL_WIDTH)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

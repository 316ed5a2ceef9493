"""Into the wallet: the signed `cardExt` for the JS-SDK's `wx.addCard`, and a card QR code
(card/qrcode/create) that WeChat turns into a wallet card when scanned. Both deposit the code first.

The addCard signature uses the wx_card api_ticket, fetched once per merchant and kept (sealed, in the
database, for every process) until it expires.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from giftcards.core.errors import DomainError
from giftcards.core.sealing import Keyring
from giftcards.db.pool import Connect
from giftcards.wechat.cards import code_row, open_code, sync_code, wechat_problems
from giftcards.wechat.client import WeChat

QR_EXPIRE_SECONDS = 1800


def card_ext_signature(
    *, api_ticket: str, timestamp: str, card_id: str, code: str = "", openid: str = "", nonce_str: str = ""
) -> str:
    """addCard's signature: SHA1 of the non-empty values, sorted lexicographically, concatenated."""
    values = sorted(v for v in (api_ticket, timestamp, card_id, code, openid, nonce_str) if v)
    return hashlib.sha1("".join(values).encode()).hexdigest()  # noqa: S324 (WeChat's algorithm)


async def card_ext(
    connect: Connect,
    wechat: WeChat,
    keyring: Keyring,
    merchant_id: str,
    card_id: str,
    *,
    openid: str | None = None,
) -> dict[str, Any]:
    """What the page passes to wx.addCard: {cardId, cardExt} for this card's code."""
    wallet = await _ready_code(connect, wechat, keyring, merchant_id, card_id)
    with wechat_problems():
        ticket = await wechat.card_ticket()
    ext = {
        "code": wallet["code"],
        "openid": openid or "",
        "timestamp": str(int(time.time())),
        "nonce_str": secrets.token_hex(16),
    }
    ext["signature"] = card_ext_signature(
        api_ticket=ticket, card_id=wallet["wechat_card_id"], **{k: ext[k] for k in ext if k != "signature"}
    )
    if not ext["openid"]:
        del ext["openid"]
    return {
        "object": "wechat_add_card",
        "card_id": wallet["wechat_card_id"],
        "card_ext": json.dumps(ext, separators=(",", ":")),
    }


async def card_qrcode(
    connect: Connect, wechat: WeChat, keyring: Keyring, merchant_id: str, card_id: str
) -> dict[str, Any]:
    """A card/qrcode/create QR code for this card's code: scanning it in WeChat adds the card. The URL is
    kept (sealed: it hands out the card) and reused while it has more than a minute to live."""
    wallet = await _ready_code(connect, wechat, keyring, merchant_id, card_id)
    async with connect() as conn:
        cached = await conn.fetchrow(
            """SELECT qr_url_sealed, extract(epoch FROM qr_expires_at - now())::int AS left_seconds
                 FROM wechat_card_codes
                WHERE merchant_id = $1 AND card_id = $2 AND qr_expires_at > now() + interval '60 seconds'""",
            merchant_id,
            card_id,
        )
    if cached is not None:
        kept = keyring.box.open(bytes(cached["qr_url_sealed"]), context=_qr_context(merchant_id, card_id))
        return qrcode_view(kept.decode(), cached["left_seconds"])
    request = {
        "action_name": "QR_CARD",
        "expire_seconds": QR_EXPIRE_SECONDS,
        "action_info": {"card": {"card_id": wallet["wechat_card_id"], "code": wallet["code"]}},
    }
    with wechat_problems():
        answer = await wechat.call(lambda client: client.card._post("card/qrcode/create", data=request))
    url, seconds = str(answer["url"]), int(answer.get("expire_seconds", QR_EXPIRE_SECONDS))
    async with connect() as conn:
        await conn.execute(
            """UPDATE wechat_card_codes
                  SET qr_url_sealed = $3, qr_expires_at = now() + make_interval(secs => $4)
                WHERE merchant_id = $1 AND card_id = $2""",
            merchant_id,
            card_id,
            keyring.box.seal(url.encode(), context=_qr_context(merchant_id, card_id)),
            float(seconds),
        )
    return qrcode_view(url, seconds)


def qrcode_view(url: str, expire_seconds: int) -> dict[str, Any]:
    return {"object": "wechat_card_qrcode", "url": url, "expire_seconds": expire_seconds}


def _qr_context(merchant_id: str, card_id: str) -> bytes:
    return f"wechat-qr:{merchant_id}:{card_id}".encode()


async def _ready_code(
    connect: Connect, wechat: WeChat, keyring: Keyring, merchant_id: str, card_id: str
) -> dict[str, Any]:
    await sync_code(connect, wechat, keyring, merchant_id, card_id)
    async with connect() as conn:
        row = await code_row(conn, merchant_id, card_id)
    assert row is not None
    if row["wallet_state"] != "deposited":
        raise DomainError("wechat_already_in_wallet", "this card has already been added to a WeChat wallet")
    return {
        "wechat_card_id": row["wechat_card_id"],
        "code": open_code(keyring, merchant_id, card_id, row["code_sealed"]),
    }

"""The wallet's API: the shop's backend opens a session for one of its customers (API key), and the
wallet page — or the shop's own mini-program — reads and acts with that session's token as a Bearer
credential (`gw_…`, the last part of the wallet link). Every answer is about the session's owner alone.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from giftcards.core.shapes import Page
from giftcards.runtime import Runtime
from giftcards.stores.merchants import Principal
from giftcards.wallet import gifts as wallet_gifts
from giftcards.wallet import holders as wallet
from giftcards.wallet.shapes import (
    CreateWalletSession,
    GiftPageQuery,
    PassOn,
    ReceivedGift,
    SentGift,
    WalletCardPage,
    WalletCardQuery,
    WalletOverview,
    WalletSession,
)
from giftcards.web.api.gifts import gift_details
from giftcards.web.api.links import CardPageLink, Link
from giftcards.web.calls import MERCHANT, Call, Operations, Result, register_authenticator
from giftcards.web.routing import Api

TAG = "wallet"
WALLET = ("wallet",)
_OBJECT = {"type": "object"}


async def _authenticate(conn: asyncpg.Connection, rt: Runtime, token: str) -> Principal:
    return await wallet.resolve(conn, rt.keyring, token)


def holder(call: Call) -> wallet.Holder:
    principal = call.principal
    assert isinstance(principal, wallet.Holder)  # the "wallet" scheme admits wallet sessions only
    return principal


def picture_base(call: Call) -> str:
    """Where the session's pictures are (<img> cannot send a header, so their paths hold the token)."""
    token = call.request.headers.get("authorization", "").partition(" ")[2].strip()
    return f"/w/{token}"


def _with_card_pictures(call: Call, listing: dict[str, Any]) -> dict[str, Any]:
    base = picture_base(call)
    return {
        **listing,
        "data": [{**c, "thumbnail_url": f"{base}/cards/{c['id']}.png"} for c in listing["data"]],
    }


def _with_gift_picture(base: str, gift: dict[str, Any], shown: bool = True) -> dict[str, Any]:
    return {**gift, "thumbnail_url": f"{base}/gifts/{gift['id']}.png" if shown else None}


def register(api: Api) -> None:
    register_authenticator("wallet", wallet.TOKEN_PREFIX + "_", _authenticate)
    _register_sessions(api)
    _register_cards(api)
    _register_gifts(api)


def _register_sessions(api: Api) -> None:
    route = Operations(api, tag=TAG, auth=MERCHANT)

    @route.post("/v1/wallet_sessions", created=WalletSession, body=CreateWalletSession, no_store=True)
    async def create_wallet_session(call: Call) -> Result:
        """A short-lived link to one customer's wallet (their cards, gifts waiting, gifts sent)"""
        b: CreateWalletSession = call.body
        return 201, await wallet.create_session(
            call.conn,
            call.keyring,
            call.principal,
            owner_id=b.owner_id,
            minutes=b.expires_in_minutes,
            display_name=b.display_name,
            public_url=call.public_url,
        )

    @route.post("/v1/wallet_sessions/{session_id}/revoke", answer=WalletSession, no_store=True)
    async def revoke_wallet_session(call: Call) -> Result:
        """End a wallet session before its time (e.g. when the customer logs out)"""
        return 200, await wallet.revoke_session(call.conn, call.merchant_id, call.path["session_id"])


def _register_cards(api: Api) -> None:
    route = Operations(api, tag=TAG, auth=WALLET)

    @route.get("/v1/wallet", answer=WalletOverview, no_store=True)
    async def wallet_overview(call: Call) -> Result:
        """The wallet at a glance: cards per group, what can be spent per currency, gifts waiting"""
        return 200, await wallet.overview(call.conn, holder(call))

    @route.get("/v1/wallet/cards", answer=WalletCardPage, query=WalletCardQuery, no_store=True)
    async def wallet_cards(call: Call) -> Result:
        """The cards held: with value first (soonest expiry first), then used up and expired ones"""
        listing = await wallet.list_cards(call.conn, holder(call), **call.filters)
        return 200, _with_card_pictures(call, listing)

    @route.post("/v1/wallet/cards/{card_id}/open", created=Link, no_store=True)
    async def wallet_open_card(call: Call) -> Result:
        """A card-page link for a held card (QR for the till, code, history; WeChat where set up)"""
        return 201, await wallet.open_card(
            call.conn, call.keyring, holder(call), call.path["card_id"], public_url=call.public_url
        )

    @route.post("/v1/wallet/cards/{card_id}/gifts", created=_OBJECT, body=PassOn, no_store=True)
    async def wallet_pass_on(call: Call) -> Result:
        """Pass a held, unspent card on as a gift (the answer holds the link to share)"""
        made = await wallet_gifts.pass_on(
            call.conn,
            call.keyring,
            holder(call),
            call.path["card_id"],
            gift_details(call.body, recipient_owner_id=call.body.recipient_owner_id),
            public_url=call.public_url,
        )
        return 201, _with_gift_picture(picture_base(call), made)


def _register_gifts(api: Api) -> None:
    route = Operations(api, tag=TAG, auth=WALLET)

    @route.get("/v1/wallet/gifts/received", answer=Page[ReceivedGift], query=GiftPageQuery, no_store=True)
    async def wallet_received_gifts(call: Call) -> Result:
        """Gifts addressed to this customer that wait to be claimed, newest first"""
        listing = await wallet_gifts.received(call.conn, holder(call), **call.filters)
        base = picture_base(call)
        data = [_with_gift_picture(base, gift, gift["can_claim"]) for gift in listing["data"]]
        return 200, {**listing, "data": data}

    @route.get("/v1/wallet/gifts/sent", answer=Page[SentGift], query=GiftPageQuery, no_store=True)
    async def wallet_sent_gifts(call: Call) -> Result:
        """Gifts this customer sent, newest first, with their state"""
        listing = await wallet_gifts.sent(call.conn, holder(call), **call.filters)
        base = picture_base(call)
        return 200, {**listing, "data": [_with_gift_picture(base, gift) for gift in listing["data"]]}

    @route.post("/v1/wallet/gifts/{gift_id}/claim", answer=CardPageLink, no_store=True)
    async def wallet_claim_gift(call: Call) -> Result:
        """Claim a gift addressed to this customer: the card becomes theirs"""
        return 200, await wallet_gifts.claim(
            call.conn, call.keyring, holder(call), call.path["gift_id"], public_url=call.public_url
        )

    @route.post("/v1/wallet/gifts/{gift_id}/revoke", answer=SentGift, no_store=True)
    async def wallet_revoke_gift(call: Call) -> Result:
        """Withdraw a gift this customer sent and nobody claimed: the card is theirs again"""
        revoked = await wallet_gifts.revoke(call.conn, holder(call), call.path["gift_id"])
        return 200, _with_gift_picture(picture_base(call), revoked)

    @route.get("/v1/wallet/gifts/{gift_id}/link", answer=Link, no_store=True)
    async def wallet_gift_link(call: Call) -> Result:
        """The link of a gift this customer sent, to share it again while it waits"""
        return 200, await wallet_gifts.share_link(
            call.conn, call.keyring, holder(call), call.path["gift_id"], public_url=call.public_url
        )

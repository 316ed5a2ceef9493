"""WeChat card wallet: settings, card sync, add-to-wallet parameters, the outbox and discrepancies (back
office), and the event callback (WeChat). The owner's page is in web/pages/wechat.py."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from msgspec import UNSET
from starlette.responses import Response

from giftcards.core import ids
from giftcards.core.errors import DomainError
from giftcards.core.shapes import given
from giftcards.runtime import Runtime
from giftcards.web.calls import MERCHANT, PUBLIC, TEXT, Call, Operations, Result, acquire
from giftcards.web.routing import Api
from giftcards.wechat import accounts, add_card, backoffice, callbacks
from giftcards.wechat import cards as wechat_cards
from giftcards.wechat.client import WeChat, session
from giftcards.wechat.shapes import (
    CallbackQuery,
    CardExt,
    DiscrepancyQuery,
    OutboxQuery,
    PutAccount,
    SyncBatch,
    SyncDesign,
    WeChatAccount,
    WeChatWalletCard,
)

TAG = "wechat"
ANY_OBJECT: dict[str, Any] = {"type": "object"}
LIST = {"type": "object", "properties": {"object": {"const": "list"}, "data": {"type": "array"}}}
PLAIN = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@contextlib.asynccontextmanager
async def wechat_for(call: Call, merchant_id: str | None = None) -> AsyncIterator[WeChat]:
    """The merchant's WeChat for an `outbound` operation, in one of its turns (wechat/client.py session)."""
    rt: Runtime = call.rt
    merchant = merchant_id or call.merchant_id
    with wechat_cards.wechat_problems():
        async with session(
            call.connect, rt.keyring, rt.wechat, merchant, timeout=rt.settings.wechat_timeout
        ) as wechat:
            yield wechat


async def _account_for_callback(conn: asyncpg.Connection, call: Call) -> accounts.Account:
    merchant_id = call.path["merchant_id"]
    account = None
    if ids.is_id(merchant_id, "mer"):
        account = await accounts.find(conn, call.keyring, merchant_id)
    if account is None:
        raise DomainError("not_found", "no WeChat callback here")
    return account


def register(api: Api) -> None:
    route = Operations(api, tag=TAG, auth=MERCHANT)

    @route.put("/v1/wechat/account", answer=WeChatAccount, idempotent=True, body=PutAccount)
    async def put_wechat_account(call: Call) -> Result:
        """Set the WeChat official account (secrets write-only; left out = unchanged)"""
        body: PutAccount = call.body
        aes_key = body.encoding_aes_key
        return 200, await accounts.put_account(
            call.conn,
            call.keyring,
            call.merchant_id,
            appid=body.appid,
            secret=body.secret,
            callback_token=body.callback_token,
            encoding_aes_key=None if aes_key is UNSET else aes_key,
            base_url=body.base_url,
            plain_mode=aes_key is None,
        )

    @route.get("/v1/wechat/account", answer=WeChatAccount)
    async def get_wechat_account(call: Call) -> Result:
        """The WeChat settings (never the secrets)"""
        return 200, await accounts.get_view(call.conn, call.merchant_id)

    @route.post(
        "/v1/wechat/designs/{design}/sync",
        responses={200: ANY_OBJECT, 201: ANY_OBJECT},
        outbound=True,
        body=SyncDesign,
    )
    async def sync_wechat_design(call: Call) -> Result:
        """Make a design ('default' for cards without one) a WeChat gift card"""
        async with wechat_for(call) as wechat:
            created, view = await wechat_cards.sync_design(
                call.connect, wechat, call.merchant_id, call.path["design"], given(call.body)
            )
        return (201 if created else 200), view

    @route.get("/v1/wechat/designs", answer=LIST)
    async def list_wechat_designs(call: Call) -> Result:
        """Designs that are WeChat cards"""
        data = await wechat_cards.list_designs(call.conn, call.merchant_id)
        return 200, {"object": "list", "data": data, "has_more": False}

    @route.post("/v1/cards/{card_id}/wechat/sync", answer=WeChatWalletCard, outbound=True)
    async def sync_wechat_card(call: Call) -> Result:
        """Deposit the card's code into its WeChat card (and raise the stock)"""
        card_id = call.path["card_id"]
        async with wechat_for(call) as wechat:
            await wechat_cards.sync_code(call.connect, wechat, call.keyring, call.merchant_id, card_id)
        async with call.connect() as conn:
            return 200, await backoffice.wallet_status(conn, call.merchant_id, card_id)

    @route.post("/v1/card_batches/{batch_id}/wechat/sync", answer=ANY_OBJECT, outbound=True, body=SyncBatch)
    async def sync_wechat_batch(call: Call) -> Result:
        """Deposit a batch's codes into WeChat, 100 per call; repeat while `remaining` > 0"""
        async with wechat_for(call) as wechat:
            return 200, await wechat_cards.sync_batch(
                call.connect,
                wechat,
                call.keyring,
                call.merchant_id,
                call.path["batch_id"],
                limit=call.body.limit,
            )

    @route.get("/v1/cards/{card_id}/wechat", answer=WeChatWalletCard)
    async def get_wechat_card(call: Call) -> Result:
        """Where the card is in WeChat's wallet, and its outbox"""
        return 200, await backoffice.wallet_status(call.conn, call.merchant_id, call.path["card_id"])

    @route.post(
        "/v1/cards/{card_id}/wechat/card_ext", answer=ANY_OBJECT, outbound=True, body=CardExt, no_store=True
    )
    async def wechat_card_ext(call: Call) -> Result:
        """cardId and signed cardExt for wx.addCard"""
        async with wechat_for(call) as wechat:
            return 200, await add_card.card_ext(
                call.connect,
                wechat,
                call.keyring,
                call.merchant_id,
                call.path["card_id"],
                openid=call.body.openid,
            )

    @route.post("/v1/cards/{card_id}/wechat/qrcode", answer=ANY_OBJECT, outbound=True, no_store=True)
    async def wechat_card_qrcode(call: Call) -> Result:
        """A WeChat card QR code that puts this card into the scanner's wallet"""
        async with wechat_for(call) as wechat:
            return 200, await add_card.card_qrcode(
                call.connect, wechat, call.keyring, call.merchant_id, call.path["card_id"]
            )

    @route.get("/v1/wechat/outbox", answer=LIST, query=OutboxQuery)
    async def list_wechat_outbox(call: Call) -> Result:
        """Wallet updates waiting, delivered, skipped or parked"""
        q: OutboxQuery = call.query
        return 200, await backoffice.list_messages(
            call.conn,
            call.merchant_id,
            state=q.state,
            card_id=q.card,
            limit=q.limit,
            starting_after=q.starting_after,
        )

    @route.post("/v1/wechat/outbox/{message_id}/replay", answer=LIST)
    async def replay_wechat_message(call: Call) -> Result:
        """Send a parked wallet update again (in its place in the card's order)"""
        return 200, await backoffice.replay(call.conn, call.merchant_id, call.path["message_id"])

    @route.post("/v1/wechat/outbox/replay", answer=LIST)
    async def replay_wechat_parked(call: Call) -> Result:
        """Send every parked wallet update again"""
        return 200, await backoffice.replay(call.conn, call.merchant_id, None)

    @route.get("/v1/wechat/discrepancies", answer=LIST, query=DiscrepancyQuery)
    async def list_wechat_discrepancies(call: Call) -> Result:
        """Where WeChat disagrees with the ledger (money never moved because of it)"""
        return 200, await backoffice.list_discrepancies(
            call.conn, call.merchant_id, resolved=call.query.resolved, limit=call.query.limit
        )

    @route.post("/v1/wechat/discrepancies/{discrepancy_id}/resolve", answer=ANY_OBJECT)
    async def resolve_wechat_discrepancy(call: Call) -> Result:
        """Mark a discrepancy as looked into"""
        return 200, await backoffice.resolve_discrepancy(
            call.conn, call.merchant_id, call.path["discrepancy_id"]
        )

    @route.get(
        "/wechat/callback/{merchant_id}",
        auth=PUBLIC,
        answer=TEXT,
        query=CallbackQuery,
        media_type="text/plain",
    )
    async def wechat_callback_check(call: Call) -> Result:
        """WeChat's server URL check: echoes echostr when the signature verifies"""
        account = await _account_for_callback(call.conn, call)
        return Response(callbacks.echo(account, given(call.query)), media_type="text/plain", headers=PLAIN)

    @route.post(
        "/wechat/callback/{merchant_id}",
        auth=PUBLIC,
        answer=TEXT,
        query=CallbackQuery,
        media_type="text/plain",
        uses_db=False,
        max_body=callbacks.MAX_BODY_BYTES,
    )
    async def wechat_callback(call: Call) -> Result:
        """WeChat's event pushes (signed; AES safe mode when an EncodingAESKey is set)"""
        async with acquire(call.rt) as conn:
            account = await _account_for_callback(conn, call)
        callbacks.check_query(
            account, given(call.query)
        )  # a forged or stale push: refused, its body never read
        body = await call.request.body()
        async with acquire(call.rt) as conn:
            answer = await callbacks.receive(conn, call.keyring, account, given(call.query), body)
        return Response(answer, media_type="text/plain", headers=PLAIN)

"""A merchant's WeChat account as far as its event callback needs one, and the query that signs a push."""

from __future__ import annotations

import time

import httpx

from giftcards.wechat.callbacks import signature
from tests.support.api import Merchant

CALLBACK_TOKEN = "attackedCallbackToken"


async def set_up_account(client: httpx.AsyncClient, merchant: Merchant) -> None:
    """Plain mode; no call goes to WeChat for this."""
    account = {"appid": "wx0123456789abcdef", "secret": "s" * 32, "callback_token": CALLBACK_TOKEN}
    response = await client.put("/v1/wechat/account", json=account, headers=merchant.headers)
    assert response.status_code == 200, response.text


def signed_query(
    token: str = CALLBACK_TOKEN, nonce: str = "20240520", seconds_ago: int = 0
) -> dict[str, str]:
    timestamp = str(int(time.time()) - seconds_ago)
    return {"signature": signature(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}

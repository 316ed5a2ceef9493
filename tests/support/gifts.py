"""Gifts as people send and receive them: bought by the shop for a gifter, claimed by a link's holder."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.api import Merchant, with_key

GIFTER = "o_gifter_openid_0001"
FRIEND = "o_friend_openid_0002"
COMPOSED = {"sender_name": "小明", "recipient_name": "小红", "message": "七夕快乐 🎉 <b>love</b>"}


def secret_of(link: str) -> str:
    """The secret of a gift link `/g/{secret}`."""
    return urlsplit(link).path.removeprefix("/g/")


def token_of(card_url: str) -> str:
    """The token of a card page link `/c/{token}`."""
    return urlsplit(card_url).path.removeprefix("/c/")


async def purchase(
    client: httpx.AsyncClient, merchant: Merchant, design_id: str, amount: int = 52000, **fields: Any
) -> httpx.Response:
    """A gift bought for GIFTER, answered as it comes (the test checks refusals itself)."""
    body = {"design_id": design_id, "amount": amount, "gifter_id": GIFTER, **COMPOSED, **fields}
    return await client.post("/v1/gift_purchases", json=body, headers=with_key(merchant))


async def buy(
    client: httpx.AsyncClient, merchant: Merchant, design_id: str, amount: int = 52000, **fields: Any
) -> dict[str, Any]:
    """A gift bought for GIFTER: the purchase answer (its gift, card and link)."""
    response = await purchase(client, merchant, design_id, amount, **fields)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def claim(client: httpx.AsyncClient, link: str, owner: str = FRIEND) -> httpx.Response:
    return await client.post(f"/v1/gift_links/{secret_of(link)}/claim", json={"owner_id": owner})


async def claimed(client: httpx.AsyncClient, link: str, owner: str = FRIEND) -> str:
    """Claim the gift link for `owner`: the token of the card page the claim answers with."""
    response = await claim(client, link, owner)
    assert response.status_code == 200, response.text
    return token_of(response.json()["card_url"])


async def card_held_by(
    client: httpx.AsyncClient, merchant: Merchant, design_id: str, owner: str, amount: int = 52000
) -> str:
    """A card that `owner` holds, the way a person gets one: a gift bought for them, claimed by its link."""
    gift = await buy(client, merchant, design_id, amount)
    await claimed(client, gift["link"], owner)
    return str(gift["card"]["id"])

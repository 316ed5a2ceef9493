"""Wallet and customise sessions as the shop's backend asks for them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from tests.support.api import Merchant, with_key


async def open_wallet_session(
    client: httpx.AsyncClient, merchant: Merchant, owner: str, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/wallet_sessions", json={"owner_id": owner, **fields}, headers=with_key(merchant)
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def open_customise_session(
    client: httpx.AsyncClient, merchant: Merchant, owner: str, max_amount: int, **fields: Any
) -> dict[str, Any]:
    response = await client.post(
        "/v1/customise_sessions",
        json={"owner_id": owner, "max_amount": max_amount, **fields},
        headers=with_key(merchant),
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def customise_token(url: str) -> str:
    """The token of a customise link `/customise/{token}`."""
    return urlsplit(url).path.removeprefix("/customise/")


def customise_api(session: dict[str, Any]) -> str:
    """The API path of a customise session's link, /v1/customise/{token}: anonymous, the link is all."""
    return "/v1/customise/" + customise_token(session["url"])

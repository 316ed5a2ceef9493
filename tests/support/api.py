"""Small helpers for talking to the API the way a client would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from giftcards.core.sealing import Keyring

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
MASTER_KEY = bytes(range(32))
PUBLIC_IDS = Keyring(MASTER_KEY).public_ids  # the ids the servers under test render


def activity_id(entry_id: int) -> str:
    """The public id of the ledger entry `entry_id`, as the servers under test show it."""
    return PUBLIC_IDS.render("act", entry_id)


@dataclass(frozen=True)
class Merchant:
    id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def create_merchant(client: httpx.AsyncClient, name: str) -> Merchant:
    response = await client.post("/v1/merchants", json={"name": name}, headers=admin_headers())
    assert response.status_code == 201, response.text
    body = response.json()
    return Merchant(body["id"], body["api_key"]["secret"])


async def issue_card(
    client: httpx.AsyncClient, merchant: Merchant, amount: int = 10_000, **fields: Any
) -> dict[str, Any]:
    response = await client.post("/v1/cards", json={"amount": amount, **fields}, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def with_key(merchant: Merchant, key: str | None = None) -> dict[str, str]:
    return {**merchant.headers, "Idempotency-Key": key or str(uuid.uuid4())}


def bearer(token: str, key: str | None = None) -> dict[str, str]:
    """Headers for a non-merchant credential (a wallet session, a till), with an Idempotency-Key if given."""
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers

"""The service and the WeChat stand-in, both real HTTP on 127.0.0.1, wired together for wallet sync tests.

`wallet` gives a merchant with WeChat set up (pointed at the stand-in, events pushed back to the
service's callback URL) and helpers to issue a card, put it into a stand-in user's wallet and compare
what WeChat shows with the ledger. `delivery` runs the outbox worker from the test's own event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from giftcards.config import Settings
from giftcards.core.sealing import Keyring
from giftcards.db.pool import create_pool
from giftcards.value import codes
from giftcards.wechat import outbox
from giftcards.wechat.outbox import PassReport, Policy
from tests.support.api import MASTER_KEY, Merchant, issue_card, with_key
from tests.support.servers import LiveServer
from tests.wechat_standin import CallbackConfig, CardCode, WeChatStandin

CALLBACK_TOKEN = "cbToken2024"
LOGO = "https://mmbiz.qpic.cn/mmbiz/logo.png"
# Retries in milliseconds so that tests run through backoff quickly; parking after three errcode answers.
FAST = Policy(
    base_delay=0.01,
    max_delay=0.05,
    max_attempts=3,
    max_transient_attempts=10_000,
    poll_interval=0.02,
    timeout=2,
)


@pytest.fixture
def standin() -> Iterator[WeChatStandin]:
    with WeChatStandin() as running:
        yield running


@dataclass
class Delivery:
    """The outbox worker, run from the test: one pass, or passes until nothing is left to deliver."""

    pool: asyncpg.Pool
    keyring: Keyring

    async def once(self, policy: Policy = FAST) -> PassReport:
        return await outbox.deliver_pass(self.pool, self.keyring, policy)

    async def drain(self, policy: Policy = FAST, *, deadline: float = 60) -> None:
        """Until every message is delivered, skipped, parked or held back behind a parked one of its card.
        The deadline guards against a hang; it is not a timing."""
        give_up = time.monotonic() + deadline
        while await self.deliverable():
            report = await self.once(policy)
            if not report.handled:
                await asyncio.sleep(0.01)
            assert time.monotonic() < give_up, "the outbox did not drain"

    async def pending(self) -> int:
        async with self.pool.acquire() as conn:
            return int(await conn.fetchval("SELECT count(*) FROM wechat_outbox WHERE state = 'pending'"))

    async def deliverable(self) -> int:
        async with self.pool.acquire() as conn:
            return int(
                await conn.fetchval(
                    """SELECT count(*) FROM wechat_outbox o
                        WHERE state = 'pending' AND NOT EXISTS (
                              SELECT 1 FROM wechat_outbox p
                               WHERE p.merchant_id = o.merchant_id AND p.card_id = o.card_id
                                 AND p.state = 'parked' AND p.id < o.id)"""
                )
            )

    async def states(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT state, count(*) AS n FROM wechat_outbox GROUP BY state")
        return {row["state"]: row["n"] for row in rows}


@pytest_asyncio.fixture
async def delivery(settings: Settings, server: LiveServer) -> AsyncIterator[Delivery]:
    pool = await create_pool(settings)
    yield Delivery(pool, Keyring(MASTER_KEY))
    await pool.close()


@dataclass
class Held:
    """One of our cards and where it went in WeChat."""

    id: str
    code: str  # normalized, as deposited
    wechat_card_id: str
    openid: str | None = None


@dataclass
class Wallet:
    client: httpx.AsyncClient
    merchant: Merchant
    standin: WeChatStandin
    server: LiveServer
    wechat_card_id: str

    @property
    def callback_url(self) -> str:
        return f"{self.server.url}/wechat/callback/{self.merchant.id}"

    async def issue(self, amount: int = 10_000, **fields: Any) -> Held:
        card = await issue_card(self.client, self.merchant, amount, **fields)
        synced = await self.client.post(f"/v1/cards/{card['id']}/wechat/sync", headers=self.merchant.headers)
        assert synced.status_code == 200, synced.text
        assert synced.json()["wallet_state"] == "deposited"
        return Held(card["id"], codes.normalize_code(card["code"]), synced.json()["wechat_card_id"])

    async def add_to_wallet(self, card: Held, openid: str = "o-alice") -> CardCode:
        """The user taps "add" on wx.addCard with the cardExt the service signed; WeChat pushes the event."""
        answer = await self.client.post(f"/v1/cards/{card.id}/wechat/card_ext", headers=self.merchant.headers)
        assert answer.status_code == 200, answer.text
        ext = answer.json()
        held = await asyncio.to_thread(self.standin.add_card, ext["card_id"], ext["card_ext"], openid)
        assert self.standin.events[-1].delivered, self.standin.events[-1].attempts
        card.openid = openid
        return held

    async def issue_in_wallet(self, amount: int = 10_000, openid: str = "o-alice") -> Held:
        card = await self.issue(amount)
        await self.add_to_wallet(card, openid)
        return card

    async def redeem(self, card: Held, amount: int) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/redemptions", json={"code": card.code, "amount": amount}, headers=with_key(self.merchant)
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def refund(self, redemption_id: str, amount: int) -> dict[str, Any]:
        r = await self.client.post(
            "/v1/refunds",
            json={"redemption": redemption_id, "amount": amount},
            headers=with_key(self.merchant),
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def change(self, card: Held, kind: str, **body: Any) -> dict[str, Any]:
        r = await self.client.post(f"/v1/cards/{card.id}/{kind}", json=body, headers=with_key(self.merchant))
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    async def ledger_balance(self, card: Held) -> int:
        r = await self.client.get(f"/v1/cards/{card.id}", headers=self.merchant.headers)
        assert r.status_code == 200, r.text
        return int(r.json()["balance"])

    async def ledger_balances(self, card: Held) -> list[int]:
        """balance_after of each entry, oldest first."""
        r = await self.client.get(
            f"/v1/cards/{card.id}/activities", params={"limit": 100}, headers=self.merchant.headers
        )
        assert r.status_code == 200, r.text
        return [a["balance_after"] for a in reversed(r.json()["data"])]

    def in_wechat(self, card: Held, code: str | None = None) -> CardCode:
        return self.standin.code(card.wechat_card_id, code or card.code)

    async def wallet_state(self, card: Held) -> dict[str, Any]:
        r = await self.client.get(f"/v1/cards/{card.id}/wechat", headers=self.merchant.headers)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]


async def set_up_wechat(
    client: httpx.AsyncClient, merchant: Merchant, standin: WeChatStandin, **extra: Any
) -> httpx.Response:
    return await client.put(
        "/v1/wechat/account",
        json={
            "appid": standin.appid,
            "secret": standin.secret,
            "callback_token": CALLBACK_TOKEN,
            "base_url": standin.base_url,
            **extra,
        },
        headers=merchant.headers,
    )


async def open_wallet(
    client: httpx.AsyncClient, merchant: Merchant, standin: WeChatStandin, server: LiveServer
) -> Wallet:
    """The merchant's WeChat set up on `standin`, its default design a WeChat card, events pushed back."""
    r = await set_up_wechat(client, merchant, standin)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/wechat/designs/default/sync", json={"logo_url": LOGO}, headers=with_key(merchant)
    )
    assert r.status_code == 201, r.text
    standin.callback = CallbackConfig(f"{server.url}/wechat/callback/{merchant.id}", CALLBACK_TOKEN)
    return Wallet(client, merchant, standin, server, r.json()["wechat_card_id"])


@pytest_asyncio.fixture
async def wallet(
    client: httpx.AsyncClient, merchant: Merchant, standin: WeChatStandin, server: LiveServer
) -> Wallet:
    return await open_wallet(client, merchant, standin, server)

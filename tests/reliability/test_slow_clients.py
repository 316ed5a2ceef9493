"""Clients that send their bodies slowly hold nothing the tills need: no database connection waits on a
body, and a body that has not arrived within GIFTCARDS_BODY_TIMEOUT is answered 408."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from giftcards.config import Settings
from tests.reliability.test_crash_and_outage import record
from tests.support.api import Merchant, create_merchant, issue_card
from tests.support.raw_http import open_request, trickle
from tests.support.servers import LiveServer
from tests.support.terminals import Terminal, create_store, new_terminal, till_in_new_store
from tests.support.wallet import customise_api, open_customise_session
from tests.support.wechat_callbacks import set_up_account, signed_query


async def customise_link(client: httpx.AsyncClient, merchant: Merchant) -> str:
    """The API path of a genuine customise link (anonymous by design: whoever holds it may upload)."""
    return customise_api(await open_customise_session(client, merchant, "o_gifter", 100_000))


class Served:
    """What the other merchant saw: each till redemption's status and seconds, each API call's status."""

    def __init__(self) -> None:
        self.redemptions: list[tuple[int, float]] = []
        self.api_calls: list[int] = []

    def statuses(self) -> set[int]:
        return {status for status, _ in self.redemptions} | set(self.api_calls)

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(seconds for _, seconds in self.redemptions)
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000, 1)


async def serve_the_till(
    client: httpx.AsyncClient, till: Terminal, card: dict[str, Any], *, count: int, seconds: float
) -> Served:
    """Redemptions one after another (a till's), and the merchant's API every fifth time."""
    served = Served()
    until = time.monotonic() + seconds
    for n in range(count):
        if time.monotonic() > until:
            break
        started = time.perf_counter()
        redeemed = await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 1}, headers=till.keyed()
        )
        served.redemptions.append((redeemed.status_code, time.perf_counter() - started))
        if n % 5 == 0:
            looked_up = await client.get(f"/v1/cards/{card['id']}", headers=till.merchant.headers)
            served.api_calls.append(looked_up.status_code)
    return served


async def test_twelve_trickled_anonymous_bodies_leave_another_merchants_tills_and_api_served(
    client: httpx.AsyncClient,
    server: LiveServer,
    merchant: Merchant,
    other_merchant: Merchant,
    artifacts: Path,
) -> None:
    till = await till_in_new_store(client, merchant)
    card = await issue_card(client, merchant, 1_000_000)
    link = await customise_link(client, other_merchant)  # a genuine link, of the other merchant
    await serve_the_till(client, till, card, count=20, seconds=20)  # warm up
    idle = await serve_the_till(client, till, card, count=200, seconds=20)

    # Photo uploads to made-up links and to a genuine one, and terminal enrolments: all anonymous,
    # chunked, one byte a second. The pool holds 10 connections.
    targets = (
        [(f"/v1/customise/{uuid.uuid4().hex}/photos", "image/png")] * 4
        + [(link + "/photos", "image/png")] * 4
        + [("/v1/terminal/enroll", "application/json")] * 4
    )
    slow = [await open_request(server.port, "POST", path, {"Content-Type": kind}) for path, kind in targets]
    trickling = [asyncio.create_task(trickle(request, until=time.monotonic() + 9)) for request in slow]
    try:
        await asyncio.sleep(1.5)  # each has sent its headers and a byte or two
        during = await serve_the_till(client, till, card, count=200, seconds=6)
        still_sending = sum(not request.answer.done() for request in slow)
    finally:
        for request in slow:
            await request.close()
        await asyncio.gather(*trickling)

    assert idle.statuses() == {200, 201}, idle.redemptions
    assert during.statuses() == {200, 201}, (during.redemptions, during.api_calls)
    assert len(during.redemptions) >= 20
    assert still_sending >= 8  # the genuine link's uploads and the enrolments were still being trickled
    figures = {
        "idle_redemptions": len(idle.redemptions),
        "idle_p50_ms": idle.percentile_ms(0.5),
        "idle_p99_ms": idle.percentile_ms(0.99),
        "during_redemptions": len(during.redemptions),
        "during_api_calls": len(during.api_calls),
        "during_p50_ms": during.percentile_ms(0.5),
        "during_p99_ms": during.percentile_ms(0.99),
        "trickles_still_sending_at_the_end": still_sending,
    }
    record(artifacts, "slow_clients", figures)
    # Generous (the machine is shared): before the fix every call waited the pool's 2 s and got 503.
    assert during.percentile_ms(0.99) < 2000, figures


@pytest.fixture
def impatient(settings: Settings) -> Iterator[LiveServer]:
    """A server that waits at most 1.5 s for a whole body."""
    live = LiveServer(replace(settings, body_timeout=1.5)).start()
    yield live
    live.stop()


async def test_a_body_that_has_not_arrived_within_the_deadline_is_answered_408(impatient: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=impatient.url, timeout=30) as client:
        merchant = await create_merchant(client, "Slow Brand")
        store = await create_store(client, merchant)
        till = await new_terminal(client, merchant, store["id"])
        link = await customise_link(client, merchant)
        await set_up_account(client, merchant)
        callback = f"/wechat/callback/{merchant.id}?" + urlencode(signed_query())
        json_type = {"Content-Type": "application/json"}
        cases: list[tuple[str, dict[str, str], int | None]] = [
            ("/v1/terminal/enroll", json_type, None),  # anonymous JSON
            (link + "/photos", {"Content-Type": "image/png"}, None),  # an upload to a genuine link
            ("/v1/cards", {**merchant.headers, **json_type, "Idempotency-Key": "slow-1"}, None),
            ("/v1/redemptions", {**till.headers, **json_type}, 64),  # a till's redemption, a declared length
            (callback, {"Content-Type": "text/xml"}, None),  # a correctly signed WeChat push
        ]
        slow = [
            await open_request(impatient.port, "POST", path, headers, content_length=length)
            for path, headers, length in cases
        ]
        until = time.monotonic() + 12
        try:
            await asyncio.gather(
                *(
                    trickle(request, until=until, chunked=length is None)
                    for request, (_, _, length) in zip(slow, cases, strict=True)
                )
            )
            answers = [await asyncio.wait_for(request.answer, 5) for request in slow]
        finally:
            for request in slow:
                await request.close()
        assert [(a.status, a.json()["code"]) for a in answers] == [(408, "request_timeout")] * len(cases)
        assert {a.headers.get("connection") for a in answers} == {"close"}  # the rest is never read
        assert all(request.sent < 12 for request in slow)  # answered after a byte or two, not at the end
        card = await issue_card(client, merchant)  # and the server goes on serving
        assert (await client.get(f"/v1/cards/{card['id']}", headers=merchant.headers)).status_code == 200

"""The sale-day mix: a limited edition selling out while recipients claim gifts, open their card pages
(fetching the rotating QR) and spend at the till, all at once against one server.

The load runs in the bench's own process (httpx), not in the server's. Each flow feeds the next:
purchases → gift links → claims → card pages → fresh QR payloads → redemptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

WORKERS = {"purchase": 6, "claim": 4, "card_page": 6, "redeem": 12}
EXPECTED = {"purchase": {201, 409}, "claim": {200}, "card_page": {200}, "redeem": {201}}


@dataclass
class Flow:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    links: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    pages: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    payloads: asyncio.Queue[str] = field(default_factory=asyncio.Queue)

    async def timed(self, kind: str, request: Awaitable[httpx.Response]) -> httpx.Response:
        """The response to `request`, its latency and status noted under `kind`."""
        started = time.perf_counter()
        response = await request
        self.latencies[kind].append(time.perf_counter() - started)
        self.statuses[kind][response.status_code] += 1
        return response

    def unexpected(self) -> int:
        return sum(
            n for kind, by in self.statuses.items() for code, n in by.items() if code not in EXPECTED[kind]
        )


async def run(
    url: str, api: dict[str, str], terminal: dict[str, str], design_id: str, seconds: float
) -> Flow:
    flow = Flow()
    # One client, so one connection, per worker: httpx's pool looks at every connection it holds on every
    # request, and with one pool shared by all 28 workers the load generator used most of a core and its
    # waits were most of the latencies measured. uvicorn closes a connection idle for 5 s; a client keeping
    # it as long can send a request just as it closes and get a ReadError (seen once in a sale-day run), so
    # idle connections go sooner here.
    limits = httpx.Limits(max_connections=1, keepalive_expiry=2.0)

    async def purchase(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            response = await flow.timed(
                "purchase",
                client.post(
                    "/v1/gift_purchases",
                    json={
                        "design_id": design_id,
                        "amount": 52000,
                        "gifter_id": "o_gifter",
                        "sender_name": "小明",
                        "recipient_name": "小红",
                        "message": "七夕快乐",
                    },
                    headers={**api, "Idempotency-Key": str(uuid.uuid4())},
                ),
            )
            if response.status_code == 201:
                flow.links.put_nowait(urlsplit(response.json()["link"]).path.removeprefix("/g/"))

    async def claim(client: httpx.AsyncClient) -> None:
        async for secret in _items(flow.links, deadline):
            response = await flow.timed(
                "claim", client.post(f"/v1/gift_links/{secret}/claim", json={"owner_id": f"o_{secret[:12]}"})
            )
            if response.status_code == 200:
                flow.pages.put_nowait(urlsplit(response.json()["card_url"]).path.removeprefix("/c/"))

    async def card_page(client: httpx.AsyncClient) -> None:
        async for token in _items(flow.pages, deadline):
            response = await flow.timed("card_page", client.get(f"/v1/card_pages/{token}/qr"))
            if response.status_code == 200:
                flow.payloads.put_nowait(response.json()["payload"])
                flow.pages.put_nowait(token)  # the page stays open and asks again later

    async def redeem(client: httpx.AsyncClient) -> None:
        async for payload in _items(flow.payloads, deadline):
            await flow.timed(
                "redeem",
                client.post(
                    "/v1/redemptions",
                    json={"qr_payload": payload, "amount": 100},
                    headers={**terminal, "Idempotency-Key": str(uuid.uuid4())},
                ),
            )

    roles = {"purchase": purchase, "claim": claim, "card_page": card_page, "redeem": redeem}

    kinds = [kind for kind, count in WORKERS.items() for _ in range(count)]
    async with contextlib.AsyncExitStack() as stack:
        # Made before the clock starts: making a client takes tens of milliseconds (its TLS context),
        # which would otherwise land on the first requests of the workers already running.
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30, limits=limits))
            for _ in kinds
        ]
        deadline = time.perf_counter() + seconds
        await asyncio.gather(*(roles[kind](client) for kind, client in zip(kinds, clients, strict=True)))
    return flow


async def _items(queue: asyncio.Queue[str], deadline: float) -> AsyncIterator[str]:
    """What the queue is given until the deadline (looking at the clock at least every 50 ms)."""
    while time.perf_counter() < deadline:
        try:
            yield await asyncio.wait_for(queue.get(), timeout=0.05)
        except TimeoutError:
            continue


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000 if ordered else 0.0

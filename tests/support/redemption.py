"""Redemptions sent either way: the one-round-trip path (giftcards/value/redemption.py) or the general one.

A request sent without Content-Length (chunked) always takes the general path, which is how tests put the
two side by side; `record_fast_calls` tells which requests the fast path answered and which it handed on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import httpx
import pytest

from giftcards.value import redemption as quick_redeem


def record_fast_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records each redemption sent the one-round-trip way and its route (the server runs in this process)."""
    seen: list[str] = []
    original = quick_redeem.redeem_many

    async def counting(conn: asyncpg.Connection, batch: Sequence[quick_redeem.QuickRedemption]) -> Any:
        outcomes = await original(conn, batch)
        seen.extend("fallback" if outcome is None else "answered" for outcome in outcomes)
        return outcomes

    monkeypatch.setattr(quick_redeem, "redeem_many", counting)
    return seen


async def chunked(body: dict[str, Any]) -> AsyncIterator[bytes]:
    yield json.dumps(body).encode()


async def redeem(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    body: dict[str, Any],
    *,
    general: bool = False,
    key: str = "",
) -> httpx.Response:
    headers = {**auth, "Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
    if general:
        return await client.post("/v1/redemptions", content=chunked(body), headers=headers)
    return await client.post("/v1/redemptions", json=body, headers=headers)

"""Redemptions sent with a Content-Length or chunked: the same path answers both, and tests send both."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx


async def _chunks(body: dict[str, Any]) -> AsyncIterator[bytes]:
    yield json.dumps(body).encode()


async def redeem(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    body: dict[str, Any],
    *,
    chunked: bool = False,
    key: str = "",
) -> httpx.Response:
    headers = {**auth, "Content-Type": "application/json", **({"Idempotency-Key": key} if key else {})}
    if chunked:
        return await client.post("/v1/redemptions", content=_chunks(body), headers=headers)
    return await client.post("/v1/redemptions", json=body, headers=headers)

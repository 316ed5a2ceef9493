"""Designs as a merchant's backend creates them: a Qixi design unless the test says otherwise."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import Merchant

QIXI = {"name": "七夕 Qixi", "occasion": "qixi", "denominations": [52000, 131400]}


async def create_design(client: httpx.AsyncClient, merchant: Merchant, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/designs", json={**QIXI, **fields}, headers=merchant.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]

"""Activity and staff-log ids tell a merchant nothing about anyone else: they are opaque, another
merchant's id names nothing, and lists still page by them."""

from __future__ import annotations

import itertools
import re
from typing import Any

import asyncpg
import httpx

from tests.support.api import PUBLIC_IDS, Merchant, issue_card, with_key
from tests.support.terminals import staff_log, till_in_new_store

OPAQUE = re.compile(r"(act|slog)_[a-z2-7]{26}")


async def redeem(
    client: httpx.AsyncClient, headers: dict[str, str], code: str, amount: int
) -> dict[str, Any]:
    response = await client.post("/v1/redemptions", json={"code": code, "amount": amount}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def shared_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))


async def test_two_merchants_activity_ids_are_opaque_and_only_their_own(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant, db: asyncpg.Connection
) -> None:
    mine = await issue_card(client, merchant, 10_000)
    theirs = await issue_card(client, other_merchant, 10_000)
    ids: list[str] = []
    for n in range(6):  # the two merchants' activities interleave in the one ledger sequence
        ids.append((await redeem(client, with_key(merchant), mine["code"], 100 + n))["id"])
        await redeem(client, with_key(other_merchant), theirs["code"], 100)
    entries = [r["id"] for r in await db.fetch("SELECT id FROM ledger_entries ORDER BY id")]
    assert entries == sorted(entries) and entries[-1] - entries[0] < 100  # the keys are sequential...
    assert all(OPAQUE.fullmatch(value) for value in ids)  # ...the ids are not
    assert not any(str(entry) in value for value in ids for entry in entries)
    assert max(shared_prefix(a[4:], b[4:]) for a, b in itertools.pairwise(ids)) < 6
    assert [PUBLIC_IDS.parse("act", value) for value in ids] == entries[2::2]  # only the key decodes them

    mine_one = await client.get(f"/v1/activities/{ids[0]}", headers=merchant.headers)
    assert (mine_one.status_code, mine_one.json()["amount"]) == (200, -100)
    foreign = await client.get(f"/v1/activities/{ids[0]}", headers=other_merchant.headers)
    assert (foreign.status_code, foreign.json()["code"]) == (404, "activity_not_found")
    refund = await client.post(
        "/v1/refunds", json={"redemption": ids[0], "amount": 50}, headers=with_key(other_merchant)
    )
    assert (refund.status_code, refund.json()["code"]) == (404, "activity_not_found")
    # The number itself, spelled out as ids were before they became opaque, names nothing made since.
    spelled = await client.get(f"/v1/activities/act_{entries[2]}", headers=merchant.headers)
    assert (spelled.status_code, spelled.json()["code"]) == (404, "activity_not_found")

    # Refunds name their redemption by the same id, and the answers render it the same way.
    refunded = await client.post(
        "/v1/refunds", json={"redemption": ids[0], "amount": 50}, headers=with_key(merchant)
    )
    assert refunded.status_code == 201, refunded.text
    assert refunded.json()["refund_of"] == ids[0] and OPAQUE.fullmatch(refunded.json()["id"])


async def test_activity_history_pages_by_opaque_ids(client: httpx.AsyncClient, merchant: Merchant) -> None:
    card = await issue_card(client, merchant, 10_000)
    for amount in range(101, 111):
        await redeem(client, with_key(merchant), card["code"], amount)
    url = f"/v1/cards/{card['id']}/activities"
    whole = (await client.get(url, params={"limit": 100}, headers=merchant.headers)).json()["data"]
    assert [a["amount"] for a in whole] == [-a for a in range(110, 100, -1)] + [10_000]
    paged: list[dict[str, Any]] = []
    cursor: dict[str, Any] = {}
    while True:
        page = (await client.get(url, params={"limit": 3, **cursor}, headers=merchant.headers)).json()
        paged += page["data"]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert paged == whole


async def test_staff_log_ids_are_opaque_and_page(client: httpx.AsyncClient, merchant: Merchant) -> None:
    terminal = await till_in_new_store(client, merchant)
    card = await issue_card(client, merchant, 10_000)
    made = [await redeem(client, terminal.keyed(), card["code"], 100) for _ in range(5)]
    entries = [e for e in await staff_log(client, merchant) if e["action"] == "redeem"]
    assert all(OPAQUE.fullmatch(e["id"]) for e in entries)
    assert [e["activity"] for e in entries] == [m["id"] for m in reversed(made)]  # the same activity ids
    every = await staff_log(client, merchant)
    paged: list[dict[str, Any]] = []
    cursor: dict[str, Any] = {}
    while True:
        response = await client.get("/v1/staff_log", params={"limit": 2, **cursor}, headers=merchant.headers)
        page = response.json()
        paged += page["data"]
        if not page["has_more"]:
            break
        cursor = {"starting_after": page["data"][-1]["id"]}
    assert paged == every
    todays = (await client.get("/v1/terminal/redemptions", headers=terminal.headers)).json()["data"]
    assert [r["id"] for r in todays] == [m["id"] for m in reversed(made)]


async def test_ids_given_out_before_they_were_opaque_keep_naming_their_rows(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    """Rows numbered before schema/migrations/0013 (below 2^50) were shown as act_<n>: a refund naming one
    that way
    still finds it, and the same row answers under its opaque id too."""
    await db.execute("ALTER TABLE ledger_entries ALTER COLUMN id RESTART WITH 41")  # as before the change
    card = await issue_card(client, merchant, 10_000)
    redemption = await redeem(client, with_key(merchant), card["code"], 300)
    number = PUBLIC_IDS.parse("act", redemption["id"])
    assert number is not None and number < 50
    old = await client.get(f"/v1/activities/act_{number}", headers=merchant.headers)
    assert old.status_code == 200 and old.json()["id"] == redemption["id"]
    refund = await client.post(
        "/v1/refunds", json={"redemption": f"act_{number}", "amount": 300}, headers=with_key(merchant)
    )
    assert refund.status_code == 201, refund.text
    assert refund.json()["refund_of"] == redemption["id"]

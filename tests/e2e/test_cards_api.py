"""Issuing, spending, refunding and changing cards over HTTP, with the figures checked to the fen."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from giftcards.value import codes
from tests.support.api import Merchant, issue_card


async def redeem(client: httpx.AsyncClient, merchant: Merchant, **body: object) -> httpx.Response:
    return await client.post("/v1/redemptions", json=body, headers=merchant.headers)


async def test_an_issued_card_has_a_typable_code_and_its_full_balance(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    card = await issue_card(client, merchant, 88_800, campaign="qixi-2026")
    assert card["state"] == "active"
    assert (card["balance"], card["initial_amount"], card["currency"]) == (88_800, 88_800, "CNY")
    assert card["campaign"] == "qixi-2026"
    code = codes.normalize_code(card["code"])
    assert card["code"] == codes.format_code(code) and len(code) == 20
    assert card["code_last4"] == code[-4:]
    # The code is not stored in the clear, and reading the card back does not show it.
    stored = await db.fetchrow("SELECT code_hash, code_sealed FROM cards WHERE id = $1", card["id"])
    assert code.encode() not in bytes(stored["code_sealed"]) and code.encode() not in bytes(
        stored["code_hash"]
    )
    fetched = (await client.get(f"/v1/cards/{card['id']}", headers=merchant.headers)).json()
    assert "code" not in fetched and fetched["balance"] == 88_800
    revealed = (await client.get(f"/v1/cards/{card['id']}/code", headers=merchant.headers)).json()
    assert revealed["code"] == card["code"]


async def test_partial_redemption_leaves_the_rest(client: httpx.AsyncClient, merchant: Merchant) -> None:
    card = await issue_card(client, merchant, 10_000)
    first = await redeem(client, merchant, code=card["code"], amount=3_250, reference="till-1")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["type"], body["amount"], body["amount_taken"], body["balance_after"]) == (
        "redeem",
        -3_250,
        3_250,
        6_750,
    )
    assert body["remainder_due"] == 0
    # a code typed in lower case with spaces still finds the card
    typed = card["code"].replace("-", " ").lower()
    second = await redeem(client, merchant, code=typed, amount=750)
    assert second.json()["balance_after"] == 6_000


async def test_an_amount_above_the_balance_is_refused_with_the_balance(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 5_000)
    response = await redeem(client, merchant, code=card["code"], amount=5_001)
    assert response.status_code == 402
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "insufficient_funds" and problem["type"] == "/problems/insufficient_funds"
    assert (problem["balance"], problem["requested_amount"], problem["currency"]) == (5_000, 5_001, "CNY")


async def test_partial_approval_takes_what_there_is_and_reports_the_remainder(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 5_000)
    response = await redeem(client, merchant, code=card["code"], amount=12_000, allow_partial=True)
    assert response.status_code == 201
    body = response.json()
    assert (body["amount_taken"], body["requested_amount"], body["remainder_due"]) == (5_000, 12_000, 7_000)
    assert body["balance_after"] == 0
    empty = await redeem(client, merchant, code=card["code"], amount=1, allow_partial=True)
    assert empty.status_code == 402 and empty.json()["balance"] == 0


async def test_refunds_are_tied_to_a_redemption_and_never_exceed_it(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 10_000)
    redemption = (await redeem(client, merchant, code=card["code"], amount=4_000)).json()
    first = await client.post(
        "/v1/refunds", json={"redemption": redemption["id"], "amount": 1_500}, headers=merchant.headers
    )
    assert first.status_code == 201
    assert (first.json()["balance_after"], first.json()["refundable_amount"]) == (7_500, 2_500)
    too_much = await client.post(
        "/v1/refunds", json={"redemption": redemption["id"], "amount": 2_501}, headers=merchant.headers
    )
    assert too_much.status_code == 409 and too_much.json()["code"] == "refund_exceeds_redemption"
    assert too_much.json()["refundable_amount"] == 2_500
    rest = await client.post("/v1/refunds", json={"redemption": redemption["id"]}, headers=merchant.headers)
    assert (
        rest.status_code == 201 and rest.json()["amount"] == 2_500 and rest.json()["balance_after"] == 10_000
    )
    again = await client.post("/v1/refunds", json={"redemption": redemption["id"]}, headers=merchant.headers)
    assert again.status_code == 409
    issue_entry = (await client.get(f"/v1/cards/{card['id']}/activities", headers=merchant.headers)).json()
    not_redemption = issue_entry["data"][-1]["id"]
    refused = await client.post("/v1/refunds", json={"redemption": not_redemption}, headers=merchant.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "not_a_redemption"


async def test_load_adjust_block_unblock_and_deactivate(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 1_000)
    path = f"/v1/cards/{card['id']}"
    loaded = await client.post(f"{path}/load", json={"amount": 500}, headers=merchant.headers)
    assert loaded.json()["balance_after"] == 1_500
    wrong_currency = await client.post(
        f"{path}/load", json={"amount": 500, "currency": "USD"}, headers=merchant.headers
    )
    assert wrong_currency.status_code == 422 and wrong_currency.json()["code"] == "currency_mismatch"
    no_reason = await client.post(f"{path}/adjust", json={"amount": -100}, headers=merchant.headers)
    assert no_reason.status_code == 400 and no_reason.json()["errors"][0]["field"] == "reason"
    adjusted = await client.post(
        f"{path}/adjust", json={"amount": -100, "reason": "till error"}, headers=merchant.headers
    )
    assert adjusted.json()["balance_after"] == 1_400
    below_zero = await client.post(
        f"{path}/adjust", json={"amount": -1_401, "reason": "x"}, headers=merchant.headers
    )
    assert below_zero.status_code == 402
    assert (await client.post(f"{path}/block", headers=merchant.headers)).json()["card"]["state"] == "blocked"
    blocked = await redeem(client, merchant, code=card["code"], amount=1)
    assert blocked.status_code == 409 and blocked.json()["code"] == "card_blocked"
    assert (await client.post(f"{path}/unblock", headers=merchant.headers)).json()["card"][
        "state"
    ] == "active"
    twice = await client.post(f"{path}/unblock", headers=merchant.headers)
    assert twice.status_code == 409 and twice.json()["code"] == "invalid_state_transition"
    gone = (
        await client.post(f"{path}/deactivate", json={"reason": "fraud"}, headers=merchant.headers)
    ).json()
    assert (gone["amount"], gone["balance_after"], gone["card"]["state"]) == (-1_400, 0, "deactivated")
    final = await redeem(client, merchant, code=card["code"], amount=1)
    assert final.json()["code"] == "card_deactivated"
    assert (await client.post(f"{path}/unblock", headers=merchant.headers)).status_code == 409


async def test_a_pending_card_must_be_activated_before_spending(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    card = await issue_card(client, merchant, 2_000, state="pending")
    assert card["state"] == "pending"
    refused = await redeem(client, merchant, code=card["code"], amount=1)
    assert refused.status_code == 409 and refused.json()["code"] == "card_not_active"
    activated = await client.post(f"/v1/cards/{card['id']}/activate", headers=merchant.headers)
    assert activated.json()["card"]["state"] == "active" and activated.json()["amount"] == 0
    assert (await redeem(client, merchant, code=card["code"], amount=2_000)).json()["balance_after"] == 0


async def test_expiry_writes_the_remaining_balance_off(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    card = await issue_card(client, merchant, 3_000, expires_at=soon)
    await redeem(client, merchant, code=card["code"], amount=1_000)
    await db.execute("UPDATE cards SET expires_at = now() - interval '1 second' WHERE id = $1", card["id"])
    refused = await redeem(client, merchant, code=card["code"], amount=1)
    assert refused.status_code == 409 and refused.json()["code"] == "card_expired"
    shown = (await client.get(f"/v1/cards/{card['id']}", headers=merchant.headers)).json()
    assert shown["state"] == "expired"
    from giftcards.value import cards

    assert await cards.expire_due(db) == 1
    assert await cards.expire_due(db) == 0
    history = (await client.get(f"/v1/cards/{card['id']}/activities", headers=merchant.headers)).json()[
        "data"
    ]
    assert [(a["type"], a["amount"], a["balance_after"]) for a in history] == [
        ("expire", -2_000, 0),
        ("redeem", -1_000, 2_000),
        ("issue", 3_000, 3_000),
    ]


async def test_expiry_in_the_past_is_refused(client: httpx.AsyncClient, merchant: Merchant) -> None:
    response = await client.post(
        "/v1/cards", json={"amount": 100, "expires_at": "2020-01-01T00:00:00Z"}, headers=merchant.headers
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "expires_at"


async def test_listing_filters_and_paginates_with_a_cursor(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    ids = [
        (await issue_card(client, merchant, 100 + i, campaign="520" if i % 2 else "qixi"))["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"starting_after": cursor} if cursor else {})}
        page = (await client.get("/v1/cards", params=params, headers=merchant.headers)).json()
        seen += [card["id"] for card in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == list(reversed(ids))
    qixi = (await client.get("/v1/cards", params={"campaign": "qixi"}, headers=merchant.headers)).json()
    assert len(qixi["data"]) == 4 and {c["campaign"] for c in qixi["data"]} == {"qixi"}
    blocked = (await client.get("/v1/cards", params={"state": "blocked"}, headers=merchant.headers)).json()
    assert blocked["data"] == []
    bad = await client.get("/v1/cards", params={"limit": "many"}, headers=merchant.headers)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "limit"


async def test_activity_history_paginates_newest_first(client: httpx.AsyncClient, merchant: Merchant) -> None:
    card = await issue_card(client, merchant, 10_000)
    for amount in (100, 200, 300, 400):
        await redeem(client, merchant, code=card["code"], amount=amount)
    first = (await client.get(f"/v1/cards/{card['id']}/activities?limit=2", headers=merchant.headers)).json()
    assert [a["amount"] for a in first["data"]] == [-400, -300] and first["has_more"]
    rest = (
        await client.get(
            f"/v1/cards/{card['id']}/activities",
            params={"limit": 10, "starting_after": first["data"][-1]["id"]},
            headers=merchant.headers,
        )
    ).json()
    assert [a["amount"] for a in rest["data"]] == [-200, -100, 10_000] and not rest["has_more"]
    one = (await client.get(f"/v1/activities/{first['data'][0]['id']}", headers=merchant.headers)).json()
    assert one["amount"] == -400 and one["balance_after"] == 9_000


async def test_unknown_and_malformed_codes_answer_alike(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    real = codes.generate_code()  # well formed, but no such card
    answers = [
        await redeem(client, merchant, code=code, amount=1)
        for code in (real, real[:-1] + ("2" if real[-1] != "2" else "3"), "hello", "0000-1111")
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({(r.json()["code"], r.json()["detail"]) for r in answers}) == 1


async def test_missing_or_bad_api_key_is_unauthenticated(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    assert (await client.get("/v1/cards")).status_code == 401
    forged = merchant.api_key[:-2] + ("AA" if not merchant.api_key.endswith("AA") else "BB")
    response = await client.get("/v1/cards", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401 and response.json()["code"] == "unauthenticated"
    keys = (await client.get("/v1/api_keys", headers=merchant.headers)).json()["data"]
    second = (await client.post("/v1/api_keys", json={"label": "till"}, headers=merchant.headers)).json()
    assert "secret" in second and all("secret" not in key for key in keys)
    revoked = await client.post(f"/v1/api_keys/{second['id']}/revoke", headers=merchant.headers)
    assert revoked.json()["revoked_at"] is not None
    dead = await client.get("/v1/cards", headers={"Authorization": f"Bearer {second['secret']}"})
    assert dead.status_code == 401

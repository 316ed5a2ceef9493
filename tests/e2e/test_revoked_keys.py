"""What an API key handed out ends with the key: its customise links issue no card, its wallet links,
card-page links and enrollment codes stop, while another key's keep working and the gifts and cards made
before the revocation keep their value. A customise session can also be revoked on its own."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import httpx

from tests.support.api import Merchant, bearer, with_key
from tests.support.designs import create_design
from tests.support.gifts import FRIEND, GIFTER, buy, claimed, secret_of, token_of
from tests.support.terminals import create_store, create_terminal, enroll
from tests.support.wallet import customise_token, open_customise_session, open_wallet_session

COMPOSED = {"sender_name": "小明", "recipient_name": "小红", "message": "七夕快乐"}
WITHDRAWN_EN = "The shop has withdrawn this link"
WITHDRAWN_ZH = "商家已停用此链接"


# -- helpers ---------------------------------------------------------------------------------------------


async def second_key(client: httpx.AsyncClient, merchant: Merchant) -> tuple[str, Merchant]:
    """Another API key of the merchant: its id and the merchant as seen through it."""
    made = await client.post("/v1/api_keys", json={"label": "leaked"}, headers=with_key(merchant))
    assert made.status_code == 201, made.text
    return made.json()["id"], Merchant(merchant.id, made.json()["secret"])


async def revoke_key(client: httpx.AsyncClient, merchant: Merchant, key_id: str) -> None:
    revoked = await client.post(f"/v1/api_keys/{key_id}/revoke", headers=with_key(merchant))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None, revoked.text


async def qixi_design(client: httpx.AsyncClient, merchant: Merchant) -> str:
    """A design that offers the 1,000.00 CNY a customise session allows."""
    return str((await create_design(client, merchant, denominations=[52000, 100000]))["id"])


async def customise_session(client: httpx.AsyncClient, merchant: Merchant) -> tuple[str, str]:
    """A customise session for 1,000.00 CNY: its id and the token of its link."""
    made = await open_customise_session(client, merchant, GIFTER, 100000)
    return made["id"], customise_token(made["url"])


async def send(client: httpx.AsyncClient, token: str, design_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/customise/{token}/send", json={"design_id": design_id, "amount": 100000, **COMPOSED}
    )


async def wallet_token(client: httpx.AsyncClient, merchant: Merchant, owner: str) -> str:
    return str((await open_wallet_session(client, merchant, owner))["token"])


async def access_link(client: httpx.AsyncClient, merchant: Merchant, card_id: str) -> str:
    """The token of a card-page link the shop's backend asks for, for the card's owner FRIEND."""
    made = await client.post(
        f"/v1/cards/{card_id}/access_links", json={"owner_id": FRIEND}, headers=with_key(merchant)
    )
    assert made.status_code == 201, made.text
    return token_of(made.json()["url"])


async def customise_page(client: httpx.AsyncClient, token: str, language: str) -> httpx.Response:
    return await client.get(f"/customise/{token}", headers={"Accept-Language": language})


async def card_count(db: asyncpg.Connection, merchant: Merchant) -> Any:
    return await db.fetchval("SELECT count(*) FROM cards WHERE merchant_id = $1", merchant.id)


def assert_withdrawn(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "session_revoked"


# -- revoking a key --------------------------------------------------------------------------------------


async def test_a_revoked_keys_customise_link_issues_no_card_and_its_wallet_link_refuses(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await qixi_design(client, merchant)
    leaked_id, leaked = await second_key(client, merchant)
    _, leaked_token = await customise_session(client, leaked)
    _, kept_token = await customise_session(client, merchant)
    leaked_wallet = await wallet_token(client, leaked, GIFTER)
    kept_wallet = await wallet_token(client, merchant, GIFTER)
    assert (await client.get(f"/v1/customise/{leaked_token}")).status_code == 200
    assert (await client.get("/v1/wallet", headers=bearer(leaked_wallet))).status_code == 200

    await revoke_key(client, merchant, leaked_id)
    before = await card_count(db, merchant)

    assert_withdrawn(await send(client, leaked_token, design))
    assert await card_count(db, merchant) == before  # no card, no gift: nothing was issued
    assert await db.fetchval("SELECT count(*) FROM gifts WHERE merchant_id = $1", merchant.id) == 0
    assert await db.fetchval("SELECT count(*) FROM ledger_entries WHERE merchant_id = $1", merchant.id) == 0
    assert_withdrawn(await client.get(f"/v1/customise/{leaked_token}"))
    preview = await client.post(
        f"/v1/customise/{leaked_token}/preview", json={"design_id": design, "amount": 100000}
    )
    assert_withdrawn(preview)
    thumbnail = await client.get(f"/customise/{leaked_token}/designs/{design}.png")
    assert thumbnail.status_code == 409 and not thumbnail.content.startswith(b"\x89PNG")
    zh = await customise_page(client, leaked_token, "zh-CN,zh;q=0.9")
    assert zh.status_code == 409 and WITHDRAWN_ZH in zh.text and "compose" not in zh.text
    en = await customise_page(client, leaked_token, "en-GB")
    assert en.status_code == 409 and WITHDRAWN_EN in en.text
    refused = await client.get("/v1/wallet", headers=bearer(leaked_wallet))
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    assert (await client.get("/v1/wallet/cards", headers=bearer(leaked_wallet))).status_code == 401
    assert (await client.get(f"/w/{leaked_wallet}")).status_code == 404

    # The other key's sessions are untouched.
    assert (await client.get("/v1/wallet", headers=bearer(kept_wallet))).status_code == 200
    assert (await client.get(f"/w/{kept_wallet}")).status_code == 200
    assert (await customise_page(client, kept_token, "en")).status_code == 200
    sent = await send(client, kept_token, design)
    assert sent.status_code == 201, sent.text
    issued = await db.fetchrow(
        """SELECT c.balance, e.actor_id FROM cards c
           JOIN ledger_entries e ON e.merchant_id = c.merchant_id AND e.card_id = c.id
           WHERE c.merchant_id = $1 AND c.id = $2""",
        merchant.id,
        sent.json()["card"]["id"],
    )
    assert issued["balance"] == 100000 and issued["actor_id"] != leaked_id


async def test_a_send_waiting_on_a_revocation_in_flight_issues_no_card(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection, database_url: str
) -> None:
    design = await qixi_design(client, merchant)
    leaked_id, leaked = await second_key(client, merchant)
    _, token = await customise_session(client, leaked)
    revoker = await asyncpg.connect(database_url)
    try:
        async with revoker.transaction():  # the revocation, written but not committed yet
            await revoker.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE merchant_id = $1 AND id = $2",
                merchant.id,
                leaked_id,
            )
            sending = asyncio.create_task(send(client, token, design))
            deadline = time.monotonic() + 30
            while not await db.fetchval(  # the send waits for the revocation's outcome
                """SELECT EXISTS (SELECT 1 FROM pg_stat_activity
                                  WHERE datname = current_database() AND wait_event_type = 'Lock')"""
            ):
                assert time.monotonic() < deadline and not sending.done(), "the send did not wait"
                await asyncio.sleep(0.02)
        assert_withdrawn(await sending)
    finally:
        await revoker.close()
    assert await card_count(db, merchant) == 0


async def test_card_pages_the_key_handed_out_stop_and_the_claimants_own_stays(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await qixi_design(client, merchant)
    leaked_id, leaked = await second_key(client, merchant)
    gift = await buy(client, merchant, design, 52000, **COMPOSED)
    card_id = gift["card"]["id"]
    claimants = await claimed(client, gift["link"], FRIEND)

    by_key = await access_link(client, leaked, card_id)
    opened = await client.post(
        f"/v1/wallet/cards/{card_id}/open", headers=bearer(await wallet_token(client, leaked, FRIEND))
    )
    assert opened.status_code == 201, opened.text
    through_wallet = token_of(opened.json()["url"])
    by_other_key = await access_link(client, merchant, card_id)
    for token in (by_key, through_wallet):
        assert (await client.get(f"/v1/card_pages/{token}/code")).status_code == 200

    await revoke_key(client, merchant, leaked_id)

    for token in (by_key, through_wallet):
        assert (await client.get(f"/v1/card_pages/{token}")).status_code == 404
        assert (await client.get(f"/v1/card_pages/{token}/code")).status_code == 404
        assert (await client.get(f"/v1/card_pages/{token}/qr")).status_code == 404
        assert (await client.get(f"/c/{token}")).status_code == 404
    for token in (claimants, by_other_key):
        page = await client.get(f"/v1/card_pages/{token}")
        assert page.status_code == 200 and page.json()["card"]["balance"] == 52000
        assert (await client.get(f"/v1/card_pages/{token}/code")).status_code == 200
    recorded = await db.fetch(
        "SELECT api_key_id FROM card_access WHERE merchant_id = $1 AND card_id = $2", merchant.id, card_id
    )
    assert [row["api_key_id"] for row in recorded].count(leaked_id) == 2


async def test_an_enrollment_code_of_a_revoked_key_enrols_no_till(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    leaked_id, leaked = await second_key(client, merchant)
    store = await create_store(client, merchant)
    leaked_code = (await create_terminal(client, leaked, store["id"]))["enrollment"]["code"]
    kept_code = (await create_terminal(client, merchant, store["id"], label="Till 2"))["enrollment"]["code"]

    await revoke_key(client, merchant, leaked_id)

    refused = await enroll(client, leaked_code)
    assert refused.status_code == 404 and refused.json()["code"] == "invalid_enrollment_code"
    enrolled = await enroll(client, kept_code)
    assert enrolled.status_code == 201, enrolled.text


async def test_what_was_sent_before_the_revocation_keeps_its_value(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await qixi_design(client, merchant)
    leaked_id, leaked = await second_key(client, merchant)
    _, token = await customise_session(client, leaked)
    sent = await send(client, token, design)
    assert sent.status_code == 201, sent.text

    await revoke_key(client, merchant, leaked_id)

    assert_withdrawn(await client.get(f"/v1/customise/{token}"))  # no longer shows the gift's link
    balance = await db.fetchval(
        "SELECT balance FROM cards WHERE merchant_id = $1 AND id = $2", merchant.id, sent.json()["card"]["id"]
    )
    assert balance == 100000
    secret = secret_of(sent.json()["link"])
    assert (await client.get(f"/v1/gift_links/{secret}")).json()["state"] == "waiting"
    page = await client.get(f"/v1/card_pages/{await claimed(client, sent.json()['link'], FRIEND)}")
    assert page.status_code == 200 and page.json()["card"]["balance"] == 100000
    gift = await client.get(f"/v1/gifts/{sent.json()['id']}", headers=merchant.headers)
    assert gift.json()["state"] == "claimed"


# -- revoking a customise session ------------------------------------------------------------------------


async def test_a_revoked_customise_session_stops_and_only_its_merchant_may_revoke_it(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await qixi_design(client, merchant)
    session_id, token = await customise_session(client, merchant)
    _, other_token = await customise_session(client, merchant)

    foreign = await client.post(
        f"/v1/customise_sessions/{session_id}/revoke", headers=with_key(other_merchant)
    )
    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    assert (await client.get(f"/v1/customise/{token}")).status_code == 200
    malformed = await client.post("/v1/customise_sessions/cus_nope/revoke", headers=with_key(merchant))
    assert malformed.status_code == 404

    key = with_key(merchant)
    revoked = await client.post(f"/v1/customise_sessions/{session_id}/revoke", headers=key)
    assert revoked.status_code == 200, revoked.text
    view = revoked.json()
    assert view["id"] == session_id and view["state"] == "revoked" and view["revoked_at"] is not None
    replayed = await client.post(f"/v1/customise_sessions/{session_id}/revoke", headers=key)
    assert replayed.status_code == 200 and replayed.headers.get("idempotent-replayed") == "true"
    assert replayed.json() == view
    again = await client.post(f"/v1/customise_sessions/{session_id}/revoke", headers=with_key(merchant))
    assert again.status_code == 200 and again.json()["revoked_at"] == view["revoked_at"]

    assert_withdrawn(await send(client, token, design))
    assert_withdrawn(await client.get(f"/v1/customise/{token}"))
    page = await customise_page(client, token, "zh")
    assert page.status_code == 409 and WITHDRAWN_ZH in page.text
    assert await card_count(db, merchant) == 0
    assert (await send(client, other_token, design)).status_code == 201  # the merchant's other link works


async def test_the_revoke_operation_is_documented(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    operation = paths["/v1/customise_sessions/{session_id}/revoke"]["post"]
    assert operation["security"] == [{"api_key": []}]
    assert "Idempotency-Key" in [p["name"] for p in operation["parameters"]]
    assert {"200", "401", "404"} <= set(operation["responses"])

"""Designs, limited editions, purchases, gift links, claims, revocation, expiry, re-gifts, the card page."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from PIL import Image

from giftcards import worker
from giftcards.config import Settings
from giftcards.core.sealing import Keyring
from giftcards.gifting import gift_links
from giftcards.qr.keys import QrKeys
from giftcards.value import cards
from tests.support.api import MASTER_KEY, Merchant, with_key
from tests.support.designs import create_design
from tests.support.gifts import FRIEND, GIFTER, buy, claim, claimed, purchase, secret_of, token_of
from tests.support.servers import eventually
from tests.support.wallet import customise_api, open_customise_session

STRANGER = "o_stranger_openid_0003"


async def bought(client: httpx.AsyncClient, merchant: Merchant, **fields: Any) -> dict[str, Any]:
    """A gift of a fresh design."""
    return await buy(client, merchant, (await create_design(client, merchant))["id"], **fields)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The burst queues 200 requests on the pool: a slow machine must not turn a wait into a 503.
    return dataclasses.replace(settings, pool_max_size=20, db_timeout=30.0)


# -- designs and limited editions ---------------------------------------------------------------------


async def test_a_burst_of_purchases_of_a_limited_design_issues_exactly_its_stock(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant, stock=50)
    answers = await asyncio.gather(*(purchase(client, merchant, design["id"]) for _ in range(200)))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(201) == 50
    refused = [answer.json() for answer in answers if answer.status_code != 201]
    assert len(refused) == 150
    assert {problem["code"] for problem in refused} == {"sold_out"}
    assert all(problem["status"] == 409 for problem in refused)
    assert await db.fetchval("SELECT count(*) FROM cards WHERE design_id = $1", design["id"]) == 50
    assert await db.fetchval("SELECT count(*) FROM gifts WHERE design_id = $1", design["id"]) == 50
    assert await db.fetchval("SELECT sold FROM designs WHERE id = $1", design["id"]) == 50
    after = await client.get(f"/v1/designs/{design['id']}", headers=merchant.headers)
    assert after.json()["remaining"] == 0 and after.json()["sold"] == 50
    late = await purchase(client, merchant, design["id"])
    assert late.status_code == 409 and late.json()["code"] == "sold_out"


async def test_a_design_outside_its_sale_window_or_withdrawn_is_refused_clearly(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    now = datetime.now(UTC)
    future = await create_design(client, merchant, sale_starts_at=(now + timedelta(days=3)).isoformat())
    response = await purchase(client, merchant, future["id"])
    assert response.status_code == 409
    assert response.json()["code"] == "design_not_on_sale" and "not started" in response.json()["detail"]
    assert response.json()["sale_starts_at"] == future["sale_starts_at"]

    past = await create_design(
        client,
        merchant,
        sale_starts_at=(now - timedelta(days=3)).isoformat(),
        sale_ends_at=(now - timedelta(days=1)).isoformat(),
    )
    response = await purchase(client, merchant, past["id"])
    assert response.status_code == 409 and "ended" in response.json()["detail"]

    open_design = await create_design(client, merchant)
    odd = await purchase(client, merchant, open_design["id"], amount=12345)
    assert odd.status_code == 422 and odd.json()["code"] == "amount_not_offered"
    assert odd.json()["denominations"] == [52000, 131400]
    withdrawn = await client.post(
        f"/v1/designs/{open_design['id']}", json={"active": False}, headers=merchant.headers
    )
    assert withdrawn.status_code == 200 and withdrawn.json()["active"] is False
    response = await purchase(client, merchant, open_design["id"])
    assert response.status_code == 409 and response.json()["code"] == "design_not_on_sale"

    foreign = await purchase(client, other_merchant, open_design["id"])
    assert foreign.status_code == 404 and foreign.json()["code"] == "design_not_found"


async def test_a_free_amount_design_takes_any_amount_within_its_limits(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    design = await create_design(client, merchant, denominations=[], min_amount=1000, max_amount=200000)
    assert (await purchase(client, merchant, design["id"], amount=8800)).status_code == 201
    assert (await purchase(client, merchant, design["id"], amount=999)).status_code == 422
    bad = await client.post(
        "/v1/designs", json={"name": "x", "occasion": "520", "denominations": []}, headers=merchant.headers
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "denominations"


async def test_a_design_takes_an_uploaded_cover_but_not_a_photo_as_its_cover(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    art = io.BytesIO()
    Image.new("RGB", (1200, 800), (120, 0, 40)).save(art, "PNG")
    headers = {**merchant.headers, "Content-Type": "image/png"}
    cover = await client.post(
        "/v1/images", params={"purpose": "cover"}, content=art.getvalue(), headers=headers
    )
    photo = await client.post(
        "/v1/images", params={"purpose": "photo"}, content=art.getvalue(), headers=headers
    )
    assert cover.status_code == photo.status_code == 201
    design = await create_design(client, merchant, cover_image_id=cover.json()["id"])
    assert design["cover_image_id"] == cover.json()["id"]
    gift = (await purchase(client, merchant, design["id"])).json()
    picture = await client.get(urlsplit(gift["link"]).path + "/card.png")
    with Image.open(io.BytesIO(picture.content)) as shown:
        assert shown.getpixel((360, 280))[:3] == (120, 0, 40)  # the cover fills the picture area
    wrong = await client.post(
        "/v1/designs",
        json={"name": "x", "occasion": "other", "denominations": [100], "cover_image_id": photo.json()["id"]},
        headers=merchant.headers,
    )
    assert wrong.status_code == 404 and wrong.json()["code"] == "image_not_found"
    foreign = await client.post(
        "/v1/designs",
        json={"name": "x", "occasion": "other", "denominations": [100], "cover_image_id": cover.json()["id"]},
        headers=other_merchant.headers,
    )
    assert foreign.status_code == 404
    assert (
        await client.get(f"/v1/images/{cover.json()['id']}", headers=other_merchant.headers)
    ).status_code == 404


async def test_stock_can_grow_but_never_below_what_was_sold(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    design = await create_design(client, merchant, stock=1)
    assert (await purchase(client, merchant, design["id"])).status_code == 201
    assert (await purchase(client, merchant, design["id"])).json()["code"] == "sold_out"
    lower = await client.post(f"/v1/designs/{design['id']}", json={"stock": 0}, headers=merchant.headers)
    assert lower.status_code == 400
    more = await client.post(f"/v1/designs/{design['id']}", json={"stock": 2}, headers=merchant.headers)
    assert more.json()["remaining"] == 1
    assert (await purchase(client, merchant, design["id"])).status_code == 201


# -- purchases -----------------------------------------------------------------------------------------


async def test_a_purchase_issues_a_card_of_the_design_and_a_gift_without_revealing_the_code(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    gift = await bought(client, merchant, reference="wxpay-4200001")
    assert gift["object"] == "gift" and gift["state"] == "waiting"
    assert "code" not in gift["card"] and gift["card"]["balance"] == 52000
    card = await db.fetchrow("SELECT * FROM cards WHERE id = $1", gift["card"]["id"])
    assert card["design_id"] == gift["design"] and card["owner_id"] is None  # nobody's while on its way
    assert await db.fetchval("SELECT count(*) FROM ledger_entries WHERE card_id = $1", card["id"]) == 1
    secret = secret_of(gift["link"])
    assert len(secret) == 32  # token_urlsafe(24): 192 bits
    stored = await db.fetchrow("SELECT * FROM gifts WHERE id = $1", gift["id"])
    assert secret.encode() not in bytes(stored["claim_hash"]) and len(stored["claim_hash"]) == 32
    leaks = await db.fetchval("SELECT count(*) FROM gifts g WHERE strpos(g::text, $1) > 0", secret)
    assert leaks == 0
    again = await client.get(f"/v1/gifts/{gift['id']}/link", headers=merchant.headers)
    assert again.json()["url"] == gift["link"]


async def test_a_purchase_is_idempotent_and_one_reference_buys_one_gift(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant, stock=10)
    body = {
        "design_id": design["id"],
        "amount": 52000,
        "gifter_id": GIFTER,
        "sender_name": "A",
        "recipient_name": "B",
        "reference": "order-77",
    }
    headers = with_key(merchant)
    first, second = await asyncio.gather(
        client.post("/v1/gift_purchases", json=body, headers=headers),
        client.post("/v1/gift_purchases", json=body, headers=headers),
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other_key = await client.post("/v1/gift_purchases", json=body, headers=with_key(merchant))
    assert other_key.status_code == 409 and other_key.json()["code"] == "duplicate_purchase"
    assert other_key.json()["gift"] == first.json()["id"]
    assert await db.fetchval("SELECT count(*) FROM cards WHERE design_id = $1", design["id"]) == 1
    assert await db.fetchval("SELECT sold FROM designs WHERE id = $1", design["id"]) == 1


async def test_a_message_is_limited_to_200_characters_of_any_unicode(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    design = await create_design(client, merchant)
    assert (await purchase(client, merchant, design["id"], message="爱" * 199 + "💕")).status_code == 201
    too_long = await purchase(client, merchant, design["id"], message="爱" * 201)
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["field"] == "message"
    control = await purchase(client, merchant, design["id"], message="a\x00b")
    assert control.status_code == 400


async def test_the_preview_renders_the_card_picture_before_buying(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    design = await create_design(client, merchant)
    response = await client.post(
        "/v1/card_images/preview",
        json={"design_id": design["id"], "amount": 52000, "message": "七夕快乐", "recipient_name": "小红"},
        headers=merchant.headers,
    )
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as picture:
        assert picture.format == "PNG" and picture.size == (720, 960)


# -- claiming --------------------------------------------------------------------------------------------


async def test_the_recipient_claims_and_becomes_the_owner_and_a_second_claim_fails(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    gift = await bought(client, merchant)
    shown = (await client.get(f"/v1/gift_links/{secret_of(gift['link'])}")).json()
    assert shown["state"] == "waiting" and shown["amount"] == 52000 and shown["message"] == gift["message"]
    assert "gifter_id" not in shown and "card" not in shown
    token = await claimed(client, gift["link"])
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", gift["card"]["id"]) == FRIEND
    page = (await client.get(f"/v1/card_pages/{token}")).json()
    assert page["card"]["balance"] == 52000 and page["gift"]["message"] == gift["message"]

    again = await claim(client, gift["link"], STRANGER)
    assert again.status_code == 409 and again.json()["code"] == "gift_already_claimed"
    assert (await claim(client, gift["link"], FRIEND)).json()["code"] == "gift_already_claimed"
    assert (await client.get(f"/v1/gift_links/{secret_of(gift['link'])}")).json()["state"] == "claimed"
    html = await client.get(urlsplit(gift["link"]).path)
    assert "already been claimed" in html.text
    stored = (await client.get(f"/v1/gifts/{gift['id']}", headers=merchant.headers)).json()
    assert stored["state"] == "claimed" and stored["recipient_id"] == FRIEND


async def test_of_many_concurrent_claims_exactly_one_wins(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    gift = await bought(client, merchant)
    owners = [f"o_claimant_{i:03d}" for i in range(20)]
    answers = await asyncio.gather(*(claim(client, gift["link"], owner) for owner in owners))
    winners = [owner for owner, answer in zip(owners, answers, strict=True) if answer.status_code == 200]
    assert len(winners) == 1
    assert {a.json()["code"] for a in answers if a.status_code != 200} == {"gift_already_claimed"}
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", gift["card"]["id"]) == winners[0]
    assert await db.fetchval("SELECT count(*) FROM card_access WHERE card_id = $1", gift["card"]["id"]) == 1


async def test_a_claim_racing_a_revocation_lets_exactly_one_of_them_happen(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    for _ in range(5):
        gift = await bought(client, merchant)
        claim_answer, revoke_answer = await asyncio.gather(
            claim(client, gift["link"]),
            client.post(f"/v1/gifts/{gift['id']}/revoke", headers=with_key(merchant)),
        )
        assert sorted([claim_answer.status_code, revoke_answer.status_code]) == [200, 409]
        owner = await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", gift["card"]["id"])
        assert owner == (FRIEND if claim_answer.status_code == 200 else GIFTER)


async def test_the_database_itself_refuses_overselling_and_a_card_in_two_gifts(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant, stock=1)
    gift = (await purchase(client, merchant, design["id"])).json()
    with pytest.raises(asyncpg.CheckViolationError, match="design_sold_within_stock"):
        await db.execute("UPDATE designs SET sold = sold + 1 WHERE id = $1", design["id"])
    with pytest.raises(asyncpg.UniqueViolationError, match="gifts_one_waiting_per_card"):
        await db.execute(
            """INSERT INTO gifts (merchant_id, id, card_id, gifter_id, sender_name, recipient_name, amount,
                                  currency, claim_hash, claim_sealed, opens_at, expires_at)
               SELECT merchant_id, 'gift_aaaaaaaaaaaaaaaa', card_id, 'someone', 'a', 'b', amount, currency,
                      decode(repeat('ab', 32), 'hex'), claim_sealed, opens_at, expires_at
               FROM gifts WHERE id = $1""",
            gift["id"],
        )
    with pytest.raises(asyncpg.CheckViolationError, match="gift_claimed_consistent"):
        await db.execute("UPDATE gifts SET state = 'claimed' WHERE id = $1", gift["id"])


async def test_an_unknown_or_malformed_link_answers_like_any_other(client: httpx.AsyncClient) -> None:
    for secret in ("A" * 32, "short", "x" * 200):
        response = await client.get(f"/v1/gift_links/{secret}")
        assert response.status_code == 404 and response.json()["code"] == "gift_not_found"
        page = await client.get(f"/g/{secret}")
        assert page.status_code == 404 and "not valid" in page.text


async def test_a_scheduled_gift_shows_a_countdown_not_the_card_until_it_opens(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    opens = datetime.now(UTC) + timedelta(days=2)
    gift = await bought(client, merchant, opens_at=opens.isoformat(), message="早安 七夕")
    assert gift["state"] == "scheduled"
    secret = secret_of(gift["link"])
    shown = (await client.get(f"/v1/gift_links/{secret}")).json()
    assert shown["state"] == "scheduled" and 2 * 86400 - 60 < shown["seconds_until_open"] <= 2 * 86400 + 1
    assert "message" not in shown and "amount" not in shown
    html = await client.get(f"/g/{secret}")
    assert 'id="countdown"' in html.text and "早安" not in html.text and "card.png" not in html.text
    assert (await client.get(f"/g/{secret}/card.png")).status_code == 404
    early = await claim(client, gift["link"])
    assert early.status_code == 409 and early.json()["code"] == "gift_not_yet_open"
    # The morning comes (moved, not waited for):
    await db.execute(
        "UPDATE gifts SET opens_at = now() - interval '1 minute', expires_at = now() + interval '1 day' "
        "WHERE id = $1",
        gift["id"],
    )
    assert (await client.get(f"/g/{secret}/card.png")).headers["content-type"] == "image/png"
    assert (await claim(client, gift["link"])).status_code == 200


# -- revoke, expiry, re-gift ----------------------------------------------------------------------------


async def test_the_gifter_may_revoke_an_unclaimed_gift_and_gets_the_card_back(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    gift = await bought(client, merchant)
    wrong = await client.post(
        f"/v1/gifts/{gift['id']}/revoke", json={"owner_id": STRANGER}, headers=with_key(merchant)
    )
    assert wrong.status_code == 404
    revoked = await client.post(
        f"/v1/gifts/{gift['id']}/revoke", json={"owner_id": GIFTER}, headers=with_key(merchant)
    )
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", gift["card"]["id"]) == GIFTER
    access = await client.post(
        f"/v1/cards/{gift['card']['id']}/access_links", json={"owner_id": GIFTER}, headers=merchant.headers
    )
    gifter_page = await client.get(f"/v1/card_pages/{token_of(access.json()['url'])}")
    assert gifter_page.status_code == 200 and gifter_page.json()["card"]["balance"] == 52000
    late = await claim(client, gift["link"])
    assert late.status_code == 409 and late.json()["code"] == "gift_revoked"
    twice = await client.post(f"/v1/gifts/{gift['id']}/revoke", headers=with_key(merchant))
    assert twice.status_code == 409 and twice.json()["code"] == "gift_revoked"

    taken = await bought(client, merchant)
    await claimed(client, taken["link"])
    too_late = await client.post(f"/v1/gifts/{taken['id']}/revoke", headers=with_key(merchant))
    assert too_late.status_code == 409 and too_late.json()["code"] == "gift_already_claimed"


async def test_an_unclaimed_gift_expires_and_goes_back_to_the_gifter(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection, settings: Settings
) -> None:
    gift = await bought(client, merchant, claim_within_hours=1)
    stored = await db.fetchrow("SELECT opens_at, expires_at FROM gifts WHERE id = $1", gift["id"])
    assert stored["expires_at"] - stored["opens_at"] == timedelta(hours=1)
    await db.execute(  # an hour and a bit later
        "UPDATE gifts SET opens_at = now() - interval '61 minutes', expires_at = now() - interval '1 minute' "
        "WHERE id = $1",
        gift["id"],
    )
    late = await claim(client, gift["link"])
    assert late.status_code == 409 and late.json()["code"] == "gift_expired"
    assert (await client.get(f"/v1/gift_links/{secret_of(gift['link'])}")).json()["state"] == "returned"
    async with worker.standalone_runtime(settings) as runtime:  # the worker's pass returns it
        await worker.run_duties(runtime)
    assert await gift_links.return_expired(db) == 0
    row = await db.fetchrow("SELECT state, returned_at FROM gifts WHERE id = $1", gift["id"])
    assert row["state"] == "returned" and row["returned_at"] is not None
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", gift["card"]["id"]) == GIFTER
    sent = (await client.get("/v1/gifts", params={"gifter_id": GIFTER}, headers=merchant.headers)).json()
    assert [g["state"] for g in sent["data"]] == ["returned"]


async def test_a_claimed_unspent_card_can_be_passed_on_and_the_old_owner_loses_every_way_to_spend_it(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    gift = await bought(client, merchant)
    card_id = gift["card"]["id"]
    token = await claimed(client, gift["link"])
    old_code = (await client.get(f"/v1/card_pages/{token}/code")).json()["code"]

    body = {"owner_id": STRANGER, "sender_name": "红", "recipient_name": "阿华", "message": "转送给你"}
    not_mine = await client.post(f"/v1/cards/{card_id}/gifts", json=body, headers=with_key(merchant))
    assert not_mine.status_code == 403 and not_mine.json()["code"] == "not_card_owner"
    body["owner_id"] = FRIEND
    passed = await client.post(f"/v1/cards/{card_id}/gifts", json=body, headers=with_key(merchant))
    assert passed.status_code == 201, passed.text
    regift = passed.json()
    assert (
        regift["previous_gift"] == gift["id"] and regift["gifter_id"] == FRIEND and regift["amount"] == 52000
    )

    assert (await client.get(f"/v1/card_pages/{token}")).status_code == 404  # the old page link is dead
    old = await client.post(
        "/v1/redemptions", json={"code": old_code, "amount": 100}, headers=merchant.headers
    )
    assert old.status_code == 404 and old.json()["code"] == "invalid_code"  # and so is the old code
    again = await client.post(f"/v1/cards/{card_id}/gifts", json=body, headers=with_key(merchant))
    assert again.status_code == 409 and again.json()["code"] == "card_in_transit"

    new_token = await claimed(client, regift["link"], STRANGER)
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", card_id) == STRANGER
    new_code = (await client.get(f"/v1/card_pages/{new_token}/code")).json()["code"]
    spent = await client.post(
        "/v1/redemptions", json={"code": new_code, "amount": 100}, headers=merchant.headers
    )
    assert spent.status_code == 201
    body["owner_id"] = STRANGER
    refused = await client.post(f"/v1/cards/{card_id}/gifts", json=body, headers=with_key(merchant))
    assert refused.status_code == 409 and refused.json()["code"] == "card_spent"


# -- the card page ---------------------------------------------------------------------------------------


async def test_the_card_page_qr_rotates_and_a_stale_one_is_refused_by_the_till(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    gift = await bought(client, merchant)
    token = await claimed(client, gift["link"])
    qr = (await client.get(f"/v1/card_pages/{token}/qr")).json()
    assert qr["step"] in (cards.current_step() - 1, cards.current_step())
    assert qr["image"].startswith("data:image/svg+xml;base64,") and qr["refresh_after_seconds"] == 20
    png = (await client.get(f"/v1/card_pages/{token}/qr", params={"image": "png"})).json()
    assert png["image"].startswith("data:image/png;base64,")
    paid = await client.post(
        "/v1/redemptions", json={"qr_payload": qr["payload"], "amount": 2000}, headers=merchant.headers
    )
    assert paid.status_code == 201 and paid.json()["balance_after"] == 50000

    qr_keys = QrKeys(Keyring(MASTER_KEY))
    await qr_keys.load(db)
    card_id = gift["card"]["id"]
    generation = await db.fetchval("SELECT payload_generation FROM cards WHERE id = $1", card_id)
    assert generation == 1  # the claim gave the card its holder
    previous = await qr_keys.sign(
        db, merchant.id, card_id, step=cards.current_step() - 1, generation=generation
    )
    accepted = await client.post(
        "/v1/redemptions", json={"qr_payload": previous, "amount": 100}, headers=merchant.headers
    )
    assert accepted.status_code == 201  # the step before is still good: a code shown at a step's end
    for age in (2, 3, 100):
        stale = await qr_keys.sign(
            db, merchant.id, card_id, step=cards.current_step() - age, generation=generation
        )
        response = await client.post(
            "/v1/redemptions", json={"qr_payload": stale, "amount": 100}, headers=merchant.headers
        )
        assert response.status_code == 404 and response.json()["code"] == "invalid_qr_payload"
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card_id) == 49900

    page = (await client.get(f"/v1/card_pages/{token}")).json()
    assert page["card"]["balance"] == 49900
    assert [entry["type"] for entry in page["history"]] == ["redeem", "redeem", "issue"]


async def test_the_card_page_shows_the_message_escaped_balance_history_and_a_strict_csp(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    gift = await bought(client, merchant, message='<script>alert("x")</script> 爱你 💕')
    html = await client.get(urlsplit(gift["link"]).path)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; 爱你 💕" in html.text
    assert "<script>alert" not in html.text
    assert "script-src 'self'" in html.headers["content-security-policy"]
    token = await claimed(client, gift["link"])
    page = await client.get(f"/c/{token}")
    assert page.status_code == 200 and "&lt;script&gt;" in page.text and "<script>alert" not in page.text
    assert "¥520.00" in page.text and 'id="qr"' in page.text
    assert "wechat" not in page.text.lower()  # the merchant has no WeChat account
    picture = await client.get(f"/c/{token}/card.png")
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG")
    script = await client.get("/static/gifts/card.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert (await client.get("/static/gifts/nothing.js")).status_code == 404


async def test_the_wechat_button_shows_only_when_the_merchant_has_wechat(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    gift = await bought(client, merchant)
    token = await claimed(client, gift["link"])
    assert (await client.get(f"/v1/card_pages/{token}")).json()["wechat"] is False
    await db.execute(
        """INSERT INTO wechat_accounts (merchant_id, appid, secret_sealed, callback_token_sealed, base_url)
           VALUES ($1, 'wx0123456789abcdef', '\\x00', '\\x00', 'http://127.0.0.1:1/')""",
        merchant.id,
    )
    assert (await client.get(f"/v1/card_pages/{token}")).json()["wechat"] is True
    assert f'href="/c/{token}/wechat"' in (await client.get(f"/c/{token}")).text


async def test_secrets_in_page_paths_never_reach_the_access_log(
    client: httpx.AsyncClient, merchant: Merchant, caplog: pytest.LogCaptureFixture
) -> None:
    gift = await bought(client, merchant)
    secret = secret_of(gift["link"])
    with caplog.at_level(logging.INFO, logger="giftcards.access"):
        await client.get(f"/g/{secret}")
        await client.get(f"/v1/gift_links/{secret}")
        token = await claimed(client, gift["link"])
        await client.get(f"/c/{token}")
        await client.get(f"/v1/card_pages/{token}/qr")
        await eventually(lambda: any("/v1/card_pages/… " in record.getMessage() for record in caplog.records))
    lines = [record.getMessage() for record in caplog.records if record.name == "giftcards.access"]
    assert any(line.startswith("GET /g/…") for line in lines)
    assert any(line.startswith("GET /c/…") for line in lines)
    assert not any(secret in line or token in line for line in lines)


async def test_the_shop_can_give_the_owner_another_card_page_link_but_nobody_else(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    gift = await bought(client, merchant)
    first = await claimed(client, gift["link"])
    card_id = gift["card"]["id"]
    refused = await client.post(
        f"/v1/cards/{card_id}/access_links", json={"owner_id": GIFTER}, headers=merchant.headers
    )
    assert refused.status_code == 403
    link = await client.post(
        f"/v1/cards/{card_id}/access_links", json={"owner_id": FRIEND}, headers=merchant.headers
    )
    assert link.status_code == 201
    assert (await client.get(f"/v1/card_pages/{token_of(link.json()['url'])}")).status_code == 200
    assert (await client.get(f"/v1/card_pages/{first}")).status_code == 200


async def test_another_merchant_can_neither_see_nor_touch_these_gifts(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    gift = await bought(client, merchant)
    card_id = gift["card"]["id"]
    theirs = other_merchant.headers
    assert (await client.get(f"/v1/gifts/{gift['id']}", headers=theirs)).status_code == 404
    assert (await client.get(f"/v1/gifts/{gift['id']}/link", headers=theirs)).status_code == 404
    revoke = await client.post(f"/v1/gifts/{gift['id']}/revoke", headers=with_key(other_merchant))
    assert revoke.status_code == 404
    listing = await client.get("/v1/gifts", params={"gifter_id": GIFTER}, headers=theirs)
    assert listing.json()["data"] == []
    token = await claimed(client, gift["link"])
    body = {"owner_id": FRIEND, "sender_name": "a", "recipient_name": "b"}
    regift = await client.post(f"/v1/cards/{card_id}/gifts", json=body, headers=with_key(other_merchant))
    assert regift.status_code == 404 and regift.json()["code"] == "card_not_found"
    access = await client.post(f"/v1/cards/{card_id}/access_links", json={"owner_id": FRIEND}, headers=theirs)
    assert access.status_code == 404
    assert (await client.get(f"/v1/card_pages/{token}")).status_code == 200  # nothing changed


# -- the customise page's API ----------------------------------------------------------------------------


async def test_a_customise_session_buys_once_within_what_the_shop_authorised(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant, stock=5)
    base = customise_api(await open_customise_session(client, merchant, GIFTER, 52000, sender_name="小明"))
    offer = (await client.get(base)).json()
    assert [d["id"] for d in offer["designs"]] == [design["id"]]
    assert offer["designs"][0]["amounts"] == [52000]  # 131400 is above what was authorised
    composed = {"design_id": design["id"], "sender_name": "小明", "recipient_name": "小红", "message": "❤"}
    above = await client.post(base + "/send", json={**composed, "amount": 131400})
    assert above.status_code == 422 and above.json()["code"] == "amount_above_authorised"
    preview = await client.post(base + "/preview", json={**composed, "amount": 52000})
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    sent = await client.post(base + "/send", json={**composed, "amount": 52000})
    assert sent.status_code == 201 and sent.json()["gifter_id"] == GIFTER
    twice = await client.post(base + "/send", json={**composed, "amount": 52000})
    assert twice.status_code == 409 and twice.json()["code"] == "session_used"
    assert (await client.get(base)).json()["sent"]["url"] == sent.json()["link"]
    assert await db.fetchval("SELECT count(*) FROM cards WHERE design_id = $1", design["id"]) == 1
    unknown = await client.get("/v1/customise/" + "B" * 32)
    assert unknown.status_code == 404


async def test_every_new_route_is_in_the_openapi_document_with_its_upload_media_types(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/v1/designs",
        "/v1/gift_purchases",
        "/v1/gift_links/{secret}/claim",
        "/c/{token}",
        "/g/{secret}",
    ):
        assert path in paths
    upload = paths["/v1/images"]["post"]["requestBody"]["content"]
    assert set(upload) == {"image/jpeg", "image/png", "image/webp"}

"""Designs become WeChat gift cards, codes are deposited, and the owner gets the card into the wallet."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import httpx

from giftcards.core import ids
from giftcards.core.sealing import Keyring
from giftcards.gifting import card_access
from giftcards.wechat.add_card import card_ext_signature
from giftcards.wechat.cards import card_definition, deposit_codes
from tests.support.api import MASTER_KEY, Merchant, issue_card, with_key
from tests.wechat.conftest import LOGO, Delivery, Wallet, set_up_wechat
from tests.wechat_standin import WeChatStandin, verify_card_ext_signature
from tests.wechat_standin.vectors import CARD_ID, NONCE, TICKET, TIMESTAMP, card_ext_vectors


@card_ext_vectors
def test_the_add_card_signature_matches_the_published_test_vectors(code: str, signature: str) -> None:
    assert (
        card_ext_signature(
            api_ticket=TICKET,
            timestamp=TIMESTAMP,
            card_id=CARD_ID,
            code=code,
            nonce_str=NONCE,
        )
        == signature
    )


async def test_a_design_becomes_one_deposit_mode_gift_card(
    client: httpx.AsyncClient, merchant: Merchant, standin: WeChatStandin, db: asyncpg.Connection
) -> None:
    assert (await set_up_wechat(client, merchant, standin)).status_code == 200
    design = ids.new_id("dsn")
    await db.execute(
        """INSERT INTO designs (merchant_id, id, name, occasion, background_color, accent_color, text_color,
                                currency, denominations)
           VALUES ($1, $2, '七夕限定', 'qixi', '#aa0000', '#ffffff', '#000000', 'CNY', '{52000}')""",
        merchant.id,
        design,
    )
    url = f"/v1/wechat/designs/{design}/sync"
    first = await client.post(url, json={"logo_url": LOGO}, headers=with_key(merchant))
    assert first.status_code == 201, first.text
    again = await client.post(url, json={"logo_url": LOGO}, headers=with_key(merchant))
    assert (again.status_code, again.json()) == (200, first.json())
    assert len(standin.calls_to("card/create")) == 1
    wechat_card = standin.card(first.json()["wechat_card_id"])
    general = wechat_card.definition["general_card"]
    assert (general["sub_card_type"], general["supply_balance"], wechat_card.quantity) == (
        "GIFT_CARD",
        True,
        0,
    )
    assert (wechat_card.deposit_mode, general["base_info"]["title"]) == (True, "七夕限定")
    assert general["base_info"]["brand_name"] == "Maison Lumière"

    missing = await client.post(
        f"/v1/wechat/designs/{ids.new_id('dsn')}/sync", json={"logo_url": LOGO}, headers=merchant.headers
    )
    assert (missing.status_code, missing.json()["code"]) == (404, "design_not_found")
    long = await client.post(
        "/v1/wechat/designs/default/sync",
        json={"logo_url": LOGO, "title": "一二三四五六七八九十"},
        headers=merchant.headers,
    )
    assert (long.status_code, long.json()["errors"][0]["field"]) == (400, "title")

    # A card of the design goes to the design's WeChat card.
    card = await issue_card(client, merchant, 52_000, design_id=design)
    synced = await client.post(f"/v1/cards/{card['id']}/wechat/sync", headers=merchant.headers)
    assert synced.json()["wechat_card_id"] == first.json()["wechat_card_id"]


async def test_card_sync_deposits_the_code_once_and_raises_the_stock(wallet: Wallet) -> None:
    card = await wallet.issue(5_000)
    again = await wallet.client.post(f"/v1/cards/{card.id}/wechat/sync", headers=wallet.merchant.headers)
    assert again.status_code == 200 and again.json()["wallet_state"] == "deposited"
    wechat_card = wallet.standin.card(wallet.wechat_card_id)
    assert (wechat_card.deposited, wechat_card.quantity) == ({card.code}, 1)
    assert len(wallet.standin.calls_to("card/code/deposit")) == 1
    assert len(wallet.standin.calls_to("card/modifystock")) == 1


async def test_a_deposit_whose_answer_was_lost_is_completed_not_doubled(wallet: Wallet) -> None:
    card = await issue_card(wallet.client, wallet.merchant, 5_000)
    wallet.standin.faults.http_error(502, path="card/modifystock")  # deposited, stock not raised yet
    failed = await wallet.client.post(f"/v1/cards/{card['id']}/wechat/sync", headers=wallet.merchant.headers)
    assert (failed.status_code, failed.json()["code"]) == (503, "wechat_unavailable")
    done = await wallet.client.post(f"/v1/cards/{card['id']}/wechat/sync", headers=wallet.merchant.headers)
    assert done.status_code == 200
    assert wallet.standin.card(wallet.wechat_card_id).quantity == 1


async def test_cards_wechat_cannot_show_are_refused(wallet: Wallet) -> None:
    usd = await issue_card(wallet.client, wallet.merchant, 5_000, currency="USD")
    r = await wallet.client.post(f"/v1/cards/{usd['id']}/wechat/sync", headers=wallet.merchant.headers)
    assert (r.status_code, r.json()["code"]) == (409, "wechat_currency_unsupported")


async def test_the_card_ext_puts_the_card_in_the_wallet_and_the_ticket_is_fetched_once(
    wallet: Wallet, delivery: Delivery
) -> None:
    first, second = await wallet.issue(1_000), await wallet.issue(2_000)
    answer = await wallet.client.post(
        f"/v1/cards/{first.id}/wechat/card_ext", json={"openid": "o-alice"}, headers=wallet.merchant.headers
    )
    ext = json.loads(answer.json()["card_ext"])
    assert (ext["code"], ext["openid"], answer.json()["card_id"]) == (
        first.code,
        "o-alice",
        wallet.wechat_card_id,
    )
    [ticket] = wallet.standin.state.valid_tickets("wx_card")
    assert verify_card_ext_signature(ext, api_ticket=ticket, card_id=wallet.wechat_card_id)
    await asyncio.to_thread(
        wallet.standin.add_card, wallet.wechat_card_id, answer.json()["card_ext"], "o-alice"
    )
    await wallet.add_to_wallet(second, "o-bob")
    assert len(wallet.standin.calls_to("cgi-bin/ticket/getticket")) == 1  # cached until it expires
    again = await wallet.client.post(f"/v1/cards/{first.id}/wechat/card_ext", headers=wallet.merchant.headers)
    assert (again.status_code, again.json()["code"]) == (409, "wechat_already_in_wallet")
    await delivery.drain()
    assert wallet.in_wechat(first).balance == 1_000 and wallet.in_wechat(second).balance == 2_000


async def test_the_owners_page_offers_a_card_qr_that_wechat_turns_into_a_wallet_card(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue(3_000)
    await db.execute("UPDATE cards SET owner_id = 'owner-1' WHERE id = $1", card.id)
    token = await card_access.grant(
        db, Keyring(MASTER_KEY), wallet.merchant.id, card.id, "owner-1", api_key_id=None
    )

    page = await wallet.client.get(f"/c/{token}/wechat", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 200 and f'src="/c/{token}/wechat/qr.svg"' in page.text
    assert "添加到微信卡包" in page.text and card.code not in page.text
    svg = await wallet.client.get(f"/c/{token}/wechat/qr.svg")
    assert (svg.status_code, svg.headers["content-type"]) == (200, "image/svg+xml")
    assert (await wallet.client.get(f"/c/{token}/wechat/qr.svg")).content == svg.content  # kept, not remade
    assert len(wallet.standin.calls_to("card/qrcode/create")) == 1

    [qr] = wallet.standin.state.qrcodes.values()
    assert (qr.card_id, qr.code) == (wallet.wechat_card_id, card.code)
    await asyncio.to_thread(wallet.standin.scan_qrcode, qr.url, "o-carol")
    await delivery.drain()
    assert wallet.in_wechat(card).balance == 3_000
    assert (await wallet.wallet_state(card))["openid"] == "o-carol"

    assert (await wallet.client.get("/c/not-a-valid-token-000000000000000/wechat")).status_code == 404


async def test_the_owners_page_card_ext_for_add_card_inside_wechat(
    wallet: Wallet, db: asyncpg.Connection
) -> None:
    card = await wallet.issue(3_000)
    await db.execute("UPDATE cards SET owner_id = 'owner-2' WHERE id = $1", card.id)
    token = await card_access.grant(
        db, Keyring(MASTER_KEY), wallet.merchant.id, card.id, "owner-2", api_key_id=None
    )
    answer = await wallet.client.post(f"/c/{token}/wechat/card_ext")
    assert answer.status_code == 200, answer.text
    held = await asyncio.to_thread(
        wallet.standin.add_card, answer.json()["card_id"], answer.json()["card_ext"], "o-dave"
    )
    assert (held.code, held.openid) == (card.code, "o-dave")


def test_depositing_again_after_a_lost_answer_never_raises_the_stock_twice(standin: WeChatStandin) -> None:
    from tests.wechat_standin import standin_wechat_client

    wechat = standin_wechat_client(standin.base_url, standin.appid, standin.secret, timeout=2)
    try:
        card_id = wechat.card.create(
            card_definition({"logo_url": LOGO, "title": "礼品卡", "brand_name": "Tea"})
        )
        assert deposit_codes(wechat, card_id, ["CODE0001"]) == 1
        # The first answer was lost after WeChat applied it: the repeat finds the code deposited and the
        # stock already covering it (40136), and changes nothing.
        assert deposit_codes(wechat, card_id, ["CODE0001"]) == 1
        assert standin.card(card_id).quantity == 1
        codes = [f"C{n:07d}" for n in range(150)]
        assert deposit_codes(wechat, card_id, codes) == 150  # two deposit calls of at most 100
        assert standin.card(card_id).quantity == 151
    finally:
        wechat._http.close()


async def test_a_batch_is_deposited_a_hundred_codes_per_call_in_resumable_steps(
    wallet: Wallet, db: asyncpg.Connection
) -> None:
    made = await wallet.client.post(
        "/v1/card_batches", json={"count": 150, "amount": 2_000}, headers=with_key(wallet.merchant)
    )
    assert made.status_code == 201, made.text
    url = f"/v1/card_batches/{made.json()['id']}/wechat/sync"
    first = await wallet.client.post(url, json={"limit": 120}, headers=wallet.merchant.headers)
    assert (first.json()["synced"], first.json()["remaining"]) == (120, 30)
    second = await wallet.client.post(url, headers=wallet.merchant.headers)
    assert (second.json()["synced"], second.json()["remaining"]) == (30, 0)
    assert [len(c.body["code"]) for c in wallet.standin.calls_to("card/code/deposit")] == [100, 20, 30]
    wechat_card = wallet.standin.card(wallet.wechat_card_id)
    assert (len(wechat_card.deposited), wechat_card.quantity) == (150, 150)
    assert await db.fetchval("SELECT count(*) FROM wechat_card_codes WHERE wallet_state = 'deposited'") == 150

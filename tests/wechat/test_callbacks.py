"""WeChat's event pushes: only genuine, fresh ones count, each once; they move cards, never money."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from typing import Any

import asyncpg
import httpx
import xmltodict
from wechatpy.crypto import WeChatCrypto

from tests.support.api import Merchant
from tests.wechat.conftest import CALLBACK_TOKEN, Delivery, Wallet, set_up_wechat
from tests.wechat_standin import CallbackConfig, WeChatStandin, event_xml


def sign(token: str, timestamp: str, nonce: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def signed(
    timestamp: int | None = None, nonce: str = "1234567890", token: str = CALLBACK_TOKEN
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {"signature": sign(token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": "o-alice"}


def event(
    standin: WeChatStandin, name: str, openid: str = "o-alice", created: int | None = None, **fields: Any
) -> str:
    return event_xml(
        to_user=standin.original_id,
        from_user=openid,
        create_time=int(time.time()) if created is None else created,
        event=name,
        fields=fields,
    )


async def push(wallet: Wallet, xml: str, query: dict[str, str]) -> httpx.Response:
    return await wallet.client.post(
        f"/wechat/callback/{wallet.merchant.id}",
        params=query,
        content=xml.encode(),
        headers={"Content-Type": "text/xml"},
    )


async def counts(db: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        await db.fetchval("SELECT count(*) FROM wechat_events"),
        await db.fetchval("SELECT count(*) FROM wechat_outbox"),
        await db.fetchval("SELECT count(*) FROM wechat_card_codes WHERE wallet_state <> 'in_wallet'"),
    )


async def test_the_url_check_echoes_echostr_only_under_a_valid_signature(wallet: Wallet) -> None:
    url = f"/wechat/callback/{wallet.merchant.id}"
    good = await wallet.client.get(url, params={**signed(), "echostr": "5839201846"})
    assert (good.status_code, good.text, good.headers["content-type"]) == (
        200,
        "5839201846",
        "text/plain; charset=utf-8",
    )
    bad = await wallet.client.get(url, params={**signed(token="guessed"), "echostr": "5839201846"})
    assert (bad.status_code, bad.headers["content-type"]) == (403, "application/problem+json")
    assert bad.json()["code"] == "wechat_signature_invalid" and "5839201846" not in bad.text
    unknown = await wallet.client.get("/wechat/callback/mer_aaaaaaaaaaaaaaaa", params=signed())
    assert unknown.status_code == 404


async def test_a_forged_event_gets_403_and_changes_nothing(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue_in_wallet(5_000)
    before = await counts(db)
    forged = event(wallet.standin, "user_del_card", CardId=card.wechat_card_id, UserCardCode=card.code)
    for query in (signed(token="not-the-token"), {**signed(), "signature": "0" * 40}, {"timestamp": "1"}, {}):
        r = await push(wallet, forged, query)
        assert (r.status_code, r.headers["content-type"]) == (403, "application/problem+json"), query
        assert r.json()["code"] == "wechat_signature_invalid"
    assert await counts(db) == before
    assert (await wallet.wallet_state(card))["wallet_state"] == "in_wallet"


async def test_a_stale_push_is_refused_even_when_signed(wallet: Wallet, db: asyncpg.Connection) -> None:
    card = await wallet.issue_in_wallet(5_000)
    before = await counts(db)
    old = int(time.time()) - 600
    xml = event(
        wallet.standin, "user_del_card", created=old, CardId=card.wechat_card_id, UserCardCode=card.code
    )
    r = await push(wallet, xml, signed(timestamp=old))
    assert (r.status_code, r.json()["code"]) == (403, "wechat_callback_stale")
    # The same through WeChat itself, whose clock we set back: all three of its attempts are refused.
    wallet.standin.advance_clock(-600)
    await asyncio.to_thread(wallet.standin.delete_from_wallet, card.wechat_card_id, card.code)
    assert [a.status_code for a in wallet.standin.events[-1].attempts] == [403, 403, 403]
    assert await counts(db) == before


async def test_a_captured_signature_cannot_carry_another_body(wallet: Wallet, db: asyncpg.Connection) -> None:
    card = await wallet.issue_in_wallet(5_000)
    other = await wallet.issue_in_wallet(5_000, "o-bob")
    query = signed(nonce="777000777")
    harmless = event(wallet.standin, "user_view_card", CardId=card.wechat_card_id, UserCardCode=card.code)
    assert (await push(wallet, harmless, query)).status_code == 200
    before = await counts(db)
    swapped = event(
        wallet.standin, "user_del_card", "o-bob", CardId=other.wechat_card_id, UserCardCode=other.code
    )
    r = await push(wallet, swapped, query)
    assert (r.status_code, r.json()["code"]) == (403, "wechat_signature_invalid")
    assert await counts(db) == before


async def test_the_same_event_delivered_three_times_applies_once(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue(5_000)
    # WeChat re-pushes the identical request when it gets no timely answer: here, three arrive together.
    xml = event(
        wallet.standin, "user_get_card", CardId=card.wechat_card_id, UserCardCode=card.code, IsGiveByFriend=0
    )
    query = signed(nonce="4242")
    answers = await asyncio.gather(*(push(wallet, xml, query) for _ in range(3)))
    assert [(r.status_code, r.text) for r in answers] == [(200, "success")] * 3
    assert await db.fetchval("SELECT count(*) FROM wechat_events") == 1
    assert await db.fetchval("SELECT count(*) FROM wechat_outbox") == 1  # one resync, not three
    again = await push(wallet, xml, query)  # and a late one, sequentially
    assert (again.status_code, again.text) == (200, "success")
    assert await db.fetchval("SELECT count(*) FROM wechat_outbox") == 1
    state = await wallet.wallet_state(card)
    assert (state["wallet_state"], state["openid"]) == ("in_wallet", "o-alice")


async def test_safe_mode_events_apply_and_plain_or_tampered_ones_are_refused(
    client: httpx.AsyncClient,
    merchant: Merchant,
    standin: WeChatStandin,
    wallet: Wallet,
    db: asyncpg.Connection,
) -> None:
    key = base64.b64encode(os.urandom(32)).decode().rstrip("=")
    r = await set_up_wechat(client, merchant, standin, encoding_aes_key=key)
    assert r.status_code == 200, r.text
    assert r.json()["message_mode"] == "aes"
    standin.callback = CallbackConfig(wallet.callback_url, CALLBACK_TOKEN, mode="aes", encoding_aes_key=key)
    card = await wallet.issue_in_wallet(5_000)  # pushed encrypted, applied
    assert (await wallet.wallet_state(card))["wallet_state"] == "in_wallet"

    before = await counts(db)
    plain = event(standin, "user_del_card", CardId=card.wechat_card_id, UserCardCode=card.code)
    r = await push(wallet, plain, signed())
    assert (r.status_code, r.json()["code"]) == (403, "wechat_signature_invalid")
    # A genuine encrypted push with one character of its ciphertext changed, and one sealed under
    # another account's token (as WeChat itself sends it).
    ts, nonce = str(int(time.time())), "31337"
    sealed = xmltodict.parse(
        WeChatCrypto(CALLBACK_TOKEN, key, standin.appid).encrypt_message(plain, nonce, ts)
    )
    cipher = sealed["xml"]["Encrypt"]
    tampered = cipher[:10] + ("A" if cipher[10] != "A" else "B") + cipher[11:]
    envelope = (
        f"<xml><ToUserName><![CDATA[{standin.original_id}]]></ToUserName>"
        f"<Encrypt><![CDATA[{tampered}]]></Encrypt></xml>"
    )
    query = {**signed(int(ts), nonce), "encrypt_type": "aes", "msg_signature": sealed["xml"]["MsgSignature"]}
    r = await push(wallet, envelope, query)
    assert (r.status_code, r.json()["code"]) == (403, "wechat_signature_invalid")
    standin.callback = CallbackConfig(wallet.callback_url, "wrong-token", mode="aes", encoding_aes_key=key)
    await asyncio.to_thread(standin.delete_from_wallet, card.wechat_card_id, card.code)
    assert [a.status_code for a in standin.events[-1].attempts] == [403, 403, 403]
    assert await counts(db) == before
    back = await client.put(
        "/v1/wechat/account",
        json={"appid": standin.appid, "encoding_aes_key": None},
        headers=merchant.headers,
    )
    assert back.json()["message_mode"] == "plain"


async def test_a_gift_moves_the_card_to_the_friend_and_follows_a_new_code(
    wallet: Wallet, delivery: Delivery
) -> None:
    card = await wallet.issue_in_wallet(5_000, "o-alice")
    await delivery.drain()
    await asyncio.to_thread(
        wallet.standin.gift_to_friend, card.wechat_card_id, card.code, "o-bob", accept=False
    )
    state = await wallet.wallet_state(card)
    assert (state["wallet_state"], state["openid"]) == ("gifting", "o-alice")
    await wallet.redeem(card, 1_000)  # spent at the till while on its way: the wallet still follows
    await delivery.drain()
    await asyncio.to_thread(
        wallet.standin.accept_gift, card.wechat_card_id, card.code, new_code="GIFTNEWCODE0001"
    )
    state = await wallet.wallet_state(card)
    assert (state["wallet_state"], state["openid"]) == ("in_wallet", "o-bob")
    await wallet.redeem(card, 500)
    await delivery.drain()
    held = wallet.in_wechat(card, "GIFTNEWCODE0001")
    assert (held.openid, held.balance) == ("o-bob", await wallet.ledger_balance(card)) == ("o-bob", 3_500)


async def test_a_gift_inside_wechat_ends_the_qr_payloads_shown_before_it(
    wallet: Wallet, delivery: Delivery
) -> None:
    card = await wallet.issue_in_wallet(5_000, "o-alice")
    await delivery.drain()
    auth = wallet.merchant.headers
    before = (await wallet.client.get(f"/v1/cards/{card.id}/qr", headers=auth)).json()["payload"]
    await asyncio.to_thread(wallet.standin.gift_to_friend, card.wechat_card_id, card.code, "o-bob")
    state = await wallet.wallet_state(card)
    assert (state["wallet_state"], state["openid"]) == ("in_wallet", "o-bob")
    stale = await wallet.client.post(
        "/v1/redemptions", json={"qr_payload": before, "amount": 1_000}, headers=auth
    )
    assert stale.status_code == 404 and stale.json()["code"] == "invalid_qr_payload", stale.text
    assert await wallet.ledger_balance(card) == 5_000
    after = (await wallet.client.get(f"/v1/cards/{card.id}/qr", headers=auth)).json()["payload"]
    paid = await wallet.client.post(
        "/v1/redemptions", json={"qr_payload": after, "amount": 1_000}, headers=auth
    )
    assert paid.status_code == 201 and paid.json()["balance_after"] == 4_000


async def test_a_card_deleted_from_the_wallet_gets_no_more_updates(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue_in_wallet(5_000)
    await delivery.drain()
    await wallet.redeem(card, 100)  # queued before the delete arrives
    await asyncio.to_thread(wallet.standin.delete_from_wallet, card.wechat_card_id, card.code)
    await wallet.redeem(card, 100)  # after: nothing to send
    await delivery.drain()
    assert (await wallet.wallet_state(card))["wallet_state"] == "deleted"
    assert await delivery.states() == {"delivered": 1, "skipped": 1}
    assert len(wallet.in_wechat(card).updates) == 1
    assert await wallet.ledger_balance(card) == 4_800


async def test_a_consume_on_wechats_side_is_a_discrepancy_and_moves_no_money(
    wallet: Wallet, delivery: Delivery
) -> None:
    card = await wallet.issue_in_wallet(5_000)
    await delivery.drain()
    await asyncio.to_thread(
        wallet.standin.consume_in_wechat, card.wechat_card_id, card.code, source="FROM_MOBILE_HELPER"
    )
    assert await wallet.ledger_balance(card) == 5_000
    assert (await wallet.wallet_state(card))["wallet_state"] == "consumed"
    r = await wallet.client.get(
        "/v1/wechat/discrepancies", params={"resolved": "false"}, headers=wallet.merchant.headers
    )
    [found] = r.json()["data"]
    assert (found["card"], found["type"], found["balance"]) == (
        card.id,
        "consumed_in_wechat_with_balance",
        5_000,
    )
    assert "FROM_MOBILE_HELPER" in found["detail"]
    done = await wallet.client.post(
        f"/v1/wechat/discrepancies/{found['id']}/resolve", headers=wallet.merchant.headers
    )
    assert done.json()["resolved_at"] is not None


async def test_our_own_consume_of_an_empty_card_reconciles_cleanly(
    wallet: Wallet, delivery: Delivery
) -> None:
    card = await wallet.issue_in_wallet(1_000)
    await wallet.redeem(card, 1_000)
    await delivery.drain()
    result = await asyncio.to_thread(
        wallet.standin.push_event,
        "user_consume_card",
        "o-alice",
        CardId=card.wechat_card_id,
        UserCardCode=card.code,
        ConsumeSource="FROM_API",
    )
    assert result.delivered
    r = await wallet.client.get("/v1/wechat/discrepancies", headers=wallet.merchant.headers)
    assert r.json()["data"] == []


async def test_events_for_cards_we_do_not_know_are_acknowledged_and_recorded(
    wallet: Wallet, db: asyncpg.Connection
) -> None:
    xml = event(wallet.standin, "user_get_card", CardId="pOtherCard", UserCardCode="123456789012")
    r = await push(wallet, xml, signed())
    assert (r.status_code, r.text) == (200, "success")
    assert await db.fetchval("SELECT outcome FROM wechat_events") == "unknown_card"
    subscribe = event(wallet.standin, "subscribe")
    assert (await push(wallet, subscribe, signed(nonce="55"))).text == "success"


def in_script(digits: str, zero: int) -> str:
    """`digits` written with the digits of another script (zero: the code point of its 0)."""
    return "".join(chr(zero + int(d)) for d in digits)


async def test_digits_of_other_scripts_in_a_push_are_refused_not_crashed_on(
    wallet: Wallet, db: asyncpg.Connection
) -> None:
    """`str.isdigit` takes a superscript two, which `int` refuses: a timestamp is ASCII digits."""
    card = await wallet.issue_in_wallet(5_000)
    before = await counts(db)
    now = str(int(time.time()))
    for stamp in ("\u00b2", now + "\u00b2", in_script(now, 0x0660), in_script(now, 0xFF10)):
        query = {
            "signature": sign(CALLBACK_TOKEN, stamp, "1234567890"),
            "timestamp": stamp,
            "nonce": "1234567890",
        }
        r = await push(wallet, event(wallet.standin, "user_del_card", CardId=card.wechat_card_id), query)
        assert (r.status_code, r.json()["code"]) == (403, "wechat_signature_invalid"), stamp
    for created in ("\u00b2", now + "\u00b2", in_script(now, 0x0660), in_script(now, 0xFF10)):
        xml = event(
            wallet.standin, "user_del_card", created=123, CardId=card.wechat_card_id, UserCardCode=card.code
        ).replace("<CreateTime>123</CreateTime>", f"<CreateTime>{created}</CreateTime>")
        assert created in xml
        r = await push(wallet, xml, signed())
        assert (r.status_code, r.json()["code"]) == (400, "invalid_request"), created
    assert await counts(db) == before
    assert (await wallet.wallet_state(card))["wallet_state"] == "in_wallet"

"""What WeChat's wallet shows follows the ledger: every change, in order, with a readable record."""

from __future__ import annotations

import asyncpg

from giftcards.value import ledger
from giftcards.value.ledger import Actor
from tests.wechat.conftest import Delivery, Wallet


async def test_issue_redeem_twice_refund_keep_the_wallet_balance_equal_to_the_ledger(
    wallet: Wallet, delivery: Delivery
) -> None:
    card = await wallet.issue(10_000)
    await wallet.add_to_wallet(card)
    await delivery.drain()
    assert wallet.in_wechat(card).balance == await wallet.ledger_balance(card) == 10_000

    first = await wallet.redeem(card, 1_200)
    await delivery.drain()
    assert wallet.in_wechat(card).balance == await wallet.ledger_balance(card) == 8_800

    await wallet.redeem(card, 300)
    await delivery.drain()
    assert wallet.in_wechat(card).balance == await wallet.ledger_balance(card) == 8_500

    await wallet.refund(first["id"], 200)
    await delivery.drain()
    assert wallet.in_wechat(card).balance == await wallet.ledger_balance(card) == 8_700

    assert wallet.in_wechat(card).record_balances == [
        "当前余额 ¥100.00",
        "消费 ¥12.00",
        "消费 ¥3.00",
        "退款 ¥2.00",
    ]
    state = await wallet.wallet_state(card)
    assert (state["wallet_state"], state["openid"], state["outbox"]["delivered"]) == (
        "in_wallet",
        "o-alice",
        4,
    )
    assert await delivery.states() == {"delivered": 4}


async def test_changes_before_the_card_reaches_a_wallet_arrive_as_one_resync(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue(5_000)
    await wallet.redeem(card, 1_000)
    await wallet.change(card, "load", amount=300)
    assert await db.fetchval("SELECT count(*) FROM wechat_outbox") == 0  # nothing WeChat could show yet

    await wallet.add_to_wallet(card, "o-bob")
    await delivery.drain()
    held = wallet.in_wechat(card)
    assert (held.balance, held.record_balances, held.openid) == (4_300, ["当前余额 ¥43.00"], "o-bob")


async def test_load_and_adjust_show_their_own_records(wallet: Wallet, delivery: Delivery) -> None:
    card = await wallet.issue_in_wallet(1_000)
    await wallet.change(card, "load", amount=550)
    await wallet.change(card, "adjust", amount=-50, reason="till error")
    await wallet.change(card, "adjust", amount=1, reason="rounding")
    await delivery.drain()
    assert wallet.in_wechat(card).record_balances[1:] == ["充值 ¥5.50", "调整 -¥0.50", "调整 +¥0.01"]
    assert wallet.in_wechat(card).balance == await wallet.ledger_balance(card) == 1_501


async def test_a_card_spent_to_zero_is_consumed_in_wechat(wallet: Wallet, delivery: Delivery) -> None:
    card = await wallet.issue_in_wallet(2_000)
    await wallet.redeem(card, 2_000)
    await delivery.drain()
    held = wallet.in_wechat(card)
    assert (held.balance, held.status, held.record_balances[-1]) == (0, "CONSUMED", "消费 ¥20.00")
    assert (await wallet.wallet_state(card))["wallet_state"] == "consumed"
    assert [c.path for c in wallet.standin.calls_to("card/code/consume")] == ["card/code/consume"]


async def test_a_deactivated_card_is_made_unavailable_in_wechat(wallet: Wallet, delivery: Delivery) -> None:
    card = await wallet.issue_in_wallet(2_000)
    await wallet.change(card, "deactivate", reason="reported stolen")
    await delivery.drain()
    held = wallet.in_wechat(card)
    assert (held.balance, held.status, held.unavailable_reason) == (0, "UNAVAILABLE", "已停用")
    assert (await wallet.wallet_state(card))["wallet_state"] == "unavailable"


async def test_a_refund_after_the_wallet_consumed_the_card_is_reported_not_lost(
    wallet: Wallet, delivery: Delivery
) -> None:
    card = await wallet.issue_in_wallet(2_000)
    spent = await wallet.redeem(card, 2_000)
    await delivery.drain()
    await wallet.refund(spent["id"], 500)
    await delivery.drain()
    # WeChat's consume is final: the wallet keeps showing the card used up, the ledger keeps the money,
    # and the back office is told.
    assert await wallet.ledger_balance(card) == 500
    r = await wallet.client.get("/v1/wechat/discrepancies", headers=wallet.merchant.headers)
    [found] = r.json()["data"]
    assert (found["card"], found["type"], found["balance"]) == (
        card.id,
        "wallet_update_refused_consumed",
        500,
    )
    assert await delivery.states() == {"delivered": 2, "skipped": 1}


async def test_every_path_that_posts_to_the_ledger_feeds_the_outbox_in_its_own_transaction(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue_in_wallet(3_000)
    await delivery.drain()
    before = await db.fetchval("SELECT count(*) FROM wechat_outbox")

    # A posting that rolls back leaves no message behind ...
    tx = db.transaction()
    await tx.start()
    await ledger.post(
        db, merchant_id=wallet.merchant.id, kind="redeem", actor=Actor("system"), card_id=card.id, amount=100
    )
    assert await db.fetchval("SELECT count(*) FROM wechat_outbox") == before + 1
    await tx.rollback()
    assert await db.fetchval("SELECT count(*) FROM wechat_outbox") == before

    # ... and one that commits (straight through post_activity, no application code) leaves exactly one.
    await db.fetchrow(
        "SELECT * FROM post_activity($1, $2, NULL, 'redeem', 700, NULL, false, NULL, NULL, 'system', NULL, "
        "NULL, NULL, NULL)",
        wallet.merchant.id,
        card.id,
    )
    row = await db.fetchrow("SELECT * FROM wechat_outbox ORDER BY id DESC LIMIT 1")
    assert (row["entry_kind"], row["amount"], row["balance"], row["state"]) == (
        "redeem",
        -700,
        2_300,
        "pending",
    )
    await delivery.drain()
    assert wallet.in_wechat(card).balance == await wallet.ledger_balance(card) == 2_300

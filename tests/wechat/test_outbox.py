"""Delivery that survives WeChat: outages, expired tokens, errcodes, slow answers, several workers."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import asyncpg

from giftcards import worker
from giftcards.config import Settings
from giftcards.wechat import outbox
from tests.wechat.conftest import FAST, Delivery, Held, Wallet
from tests.wechat_standin.server import INVALID_USER_CARD_STATUS


async def _in_wechat_equals_ledger(wallet: Wallet, cards: list[Held]) -> None:
    for card in cards:
        assert wallet.in_wechat(card).balance == await wallet.ledger_balance(card), card.id


async def test_wechat_down_during_100_redemptions_then_caught_up_with_nothing_lost_or_parked(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    cards = [await wallet.issue_in_wallet(10_000, f"o-user{n}") for n in range(10)]
    await delivery.drain()
    stop = asyncio.Event()
    running = asyncio.create_task(outbox.run(delivery.pool, delivery.keyring, stop, FAST))
    try:
        wallet.standin.go_down()
        redemptions = []
        for round_ in range(10):
            for card in cards:
                redemptions.append(await wallet.redeem(card, 100 + round_))
        # Every redemption was answered while WeChat was unreachable: none waited for it.
        assert not wallet.standin.running
        assert len(redemptions) == 100 and all(r["type"] == "redeem" for r in redemptions)
        failed = await db.fetchval(
            "SELECT count(*) FROM wechat_outbox WHERE attempts > 0 AND state = 'pending'"
        )
        assert failed >= 1  # the worker kept trying meanwhile
        wallet.standin.come_up()
        await delivery.drain()  # alongside the running loop: two workers, one order
    finally:
        stop.set()
        await running

    await _in_wechat_equals_ledger(wallet, cards)
    for card in cards:  # not just the last value: every balance, in the ledger's order
        assert [u.balance for u in wallet.in_wechat(card).updates] == (await wallet.ledger_balances(card))
    assert await delivery.states() == {"delivered": 110}
    assert await db.fetchval("SELECT count(*) FROM wechat_outbox WHERE state = 'parked'") == 0


async def test_token_expiry_mid_stream_is_recovered_without_a_failed_delivery(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    cards = [await wallet.issue_in_wallet(5_000, f"o-user{n}") for n in range(3)]
    for card in cards:
        await wallet.redeem(card, 500)
    await delivery.drain()
    wallet.standin.expire_tokens()
    for card in cards:
        await wallet.redeem(card, 700)
    await delivery.drain()

    await _in_wechat_equals_ledger(wallet, cards)
    assert await db.fetchval("SELECT max(attempts) FROM wechat_outbox") == 1  # no delivery ever failed
    assert await db.fetchval("SELECT count(*) FROM wechat_outbox WHERE last_error IS NOT NULL") == 0
    refused = [c for c in wallet.standin.calls_to("card/generalcard/updateuser") if c.errcode == 42001]
    assert 1 <= len(refused) <= FAST.lanes  # the calls in flight when the token died, each retried once
    assert len(wallet.standin.calls_to("cgi-bin/token")) == 2  # and one fetch, shared, replaced the token


async def test_repeated_errcodes_park_a_message_that_holds_back_its_card_until_replayed(
    wallet: Wallet, delivery: Delivery
) -> None:
    stuck, other = (
        await wallet.issue_in_wallet(5_000, "o-alice"),
        await wallet.issue_in_wallet(5_000, "o-bob"),
    )
    await delivery.drain()
    wallet.standin.faults.fail_next(3, "card/generalcard/updateuser", errcode=40097, errmsg="invalid args")
    await wallet.redeem(stuck, 1_000)
    for _ in range(3):
        await asyncio.sleep(FAST.max_delay)
        await delivery.once()
    await wallet.redeem(stuck, 200)  # must not overtake the parked one
    await wallet.redeem(other, 300)  # other cards are not held back
    await delivery.drain()
    assert wallet.in_wechat(stuck).balance == 5_000
    assert wallet.in_wechat(other).balance == 4_700

    headers = wallet.merchant.headers
    parked = (
        await wallet.client.get("/v1/wechat/outbox", params={"state": "parked"}, headers=headers)
    ).json()
    [message] = parked["data"]
    assert (message["card"], message["balance"], message["record"], message["attempts"]) == (
        stuck.id,
        4_000,
        "消费 ¥10.00",
        3,
    )
    assert message["last_error"].startswith("errcode 40097")
    waiting = (
        await wallet.client.get("/v1/wechat/outbox", params={"card": stuck.id}, headers=headers)
    ).json()
    assert [m["state"] for m in waiting["data"]] == ["pending", "parked", "delivered"]

    r = await wallet.client.post(f"/v1/wechat/outbox/{message['id']}/replay", headers=headers)
    assert r.status_code == 200 and r.json()["data"][0]["state"] == "pending"
    again = await wallet.client.post(f"/v1/wechat/outbox/{message['id']}/replay", headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "wechat_message_not_parked")
    await delivery.drain()
    assert [u.balance for u in wallet.in_wechat(stuck).updates] == [5_000, 4_000, 3_800]
    assert await delivery.states() == {"delivered": 5}


async def test_replaying_every_parked_message_at_once(wallet: Wallet, delivery: Delivery) -> None:
    cards = [await wallet.issue_in_wallet(1_000, f"o-user{n}") for n in range(2)]
    await delivery.drain()
    wallet.standin.faults.errcode(48001, "api unauthorized", path="card/generalcard/updateuser", times=None)
    for card in cards:
        await wallet.redeem(card, 100)
    for _ in range(3):
        await asyncio.sleep(FAST.max_delay)
        await delivery.once()
    assert await delivery.states() == {"delivered": 2, "parked": 2}
    wallet.standin.faults.clear()
    r = await wallet.client.post("/v1/wechat/outbox/replay", headers=wallet.merchant.headers)
    assert len(r.json()["data"]) == 2
    await delivery.drain()
    await _in_wechat_equals_ledger(wallet, cards)


async def test_busy_rate_limited_and_http_errors_back_off_without_parking(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue_in_wallet(3_000)
    await delivery.drain()
    faults = wallet.standin.faults
    faults.system_busy(path="card/generalcard/updateuser")
    faults.rate_limit(path="card/generalcard/updateuser")
    faults.http_error(502, path="card/generalcard/updateuser")
    faults.system_busy(path="card/generalcard/updateuser")  # more than FAST.max_attempts errcode answers
    await wallet.redeem(card, 1_000)
    await delivery.drain()
    row = await db.fetchrow("SELECT * FROM wechat_outbox ORDER BY id DESC LIMIT 1")
    assert (row["state"], row["attempts"]) == ("delivered", 5)
    assert wallet.in_wechat(card).balance == 2_000


async def test_a_lost_answer_is_repaired_by_the_retry(wallet: Wallet, delivery: Delivery) -> None:
    card = await wallet.issue_in_wallet(3_000)
    await delivery.drain()
    # WeChat applies the update but the answer arrives after our timeout: we retry, the absolute balance
    # makes the repeat harmless.
    wallet.standin.faults.slow(3, path="card/generalcard/updateuser")
    await wallet.redeem(card, 1_000)
    await delivery.drain(replace(FAST, timeout=0.5))
    assert [u.balance for u in wallet.in_wechat(card).updates] == [3_000, 2_000, 2_000]


async def test_a_redemption_never_waits_for_a_hanging_wechat(wallet: Wallet, delivery: Delivery) -> None:
    card = await wallet.issue_in_wallet(3_000)
    await delivery.drain()
    wallet.standin.faults.slow(3, path="card/generalcard/updateuser")
    await wallet.redeem(card, 100)
    in_flight = asyncio.create_task(delivery.once(replace(FAST, timeout=30)))
    while not wallet.standin.calls_to("card/generalcard/updateuser")[1:]:
        await asyncio.sleep(0.01)
    # The worker has claimed the card's message while WeChat sits on the call (holding no transaction);
    # the till goes on redeeming the same card and seeing it.
    await wallet.redeem(card, 200)
    assert await wallet.ledger_balance(card) == 2_700
    assert not in_flight.done()
    await in_flight
    await delivery.drain()
    assert [u.balance for u in wallet.in_wechat(card).updates] == [3_000, 2_900, 2_700]


async def test_concurrent_workers_deliver_each_card_in_ledger_order(
    wallet: Wallet, delivery: Delivery
) -> None:
    cards = [await wallet.issue_in_wallet(10_000, f"o-user{n}") for n in range(6)]
    for round_ in range(8):
        for card in cards:
            await wallet.redeem(card, 10 + round_)
    await asyncio.gather(*(delivery.drain() for _ in range(4)))
    for card in cards:
        assert [u.balance for u in wallet.in_wechat(card).updates] == await wallet.ledger_balances(card)


async def test_the_worker_loop_of_serve_and_giftcards_worker_delivers(
    wallet: Wallet, settings: Settings, delivery: Delivery
) -> None:
    card = await wallet.issue_in_wallet(2_500)
    await wallet.redeem(card, 500)
    stop = asyncio.Event()
    async with worker.standalone_runtime(settings) as rt:
        running = asyncio.create_task(worker.run(rt, stop))
        try:
            while await delivery.pending():
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert wallet.in_wechat(card).balance == 2_000


async def test_a_lost_answer_to_the_final_unavailable_call_ends_delivered(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue_in_wallet(3_000)
    await delivery.drain()
    wallet.standin.faults.slow(3, path="card/code/unavailable")  # applied, answer lost to our timeout
    await wallet.change(card, "deactivate", reason="fraud")
    await delivery.drain(replace(FAST, timeout=0.5))
    assert wallet.in_wechat(card).status == "UNAVAILABLE"
    row = await db.fetchrow("SELECT * FROM wechat_outbox ORDER BY id DESC LIMIT 1")
    landed = wallet.standin.calls_to("card/code/unavailable")
    assert [c.errcode for c in landed] == [0]  # applied once; only its answer was lost
    retries = [c for c in wallet.standin.calls_to("card/generalcard/updateuser") if c.seq > landed[0].seq]
    # Each retry (one, or more when a loaded machine times the next one out too) was told the code is out of
    # use already, which counts as delivered rather than as a failure to retry or park.
    assert retries and [c.errcode for c in retries] == [INVALID_USER_CARD_STATUS] * len(retries)
    assert (row["state"], row["attempts"]) == ("delivered", 1 + len(retries))


async def test_a_message_that_breaks_on_our_side_is_parked_not_retried_forever(
    wallet: Wallet, delivery: Delivery, db: asyncpg.Connection
) -> None:
    card = await wallet.issue_in_wallet(3_000)
    await delivery.drain()
    await db.execute("UPDATE wechat_card_codes SET code_sealed = '\\x00' WHERE card_id = $1", card.id)
    await wallet.redeem(card, 100)
    for _ in range(3):
        await asyncio.sleep(FAST.max_delay)
        await delivery.once()
    row = await db.fetchrow("SELECT * FROM wechat_outbox ORDER BY id DESC LIMIT 1")
    assert row["state"] == "parked" and row["last_error"].startswith("internal error (")

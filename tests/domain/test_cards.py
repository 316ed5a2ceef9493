"""Cards and their money, called in the domain layer with a connection: no server, no HTTP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from giftcards.core.errors import DomainError
from giftcards.qr.keys import QrKeys
from giftcards.value import cards, codes
from tests.support.domain import KEYRING, answer, balance, history, new_card, new_shop, redeem


async def test_an_issued_card_starts_its_ledger_with_one_issue_entry_of_its_amount(
    db: asyncpg.Connection,
) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 88_800, campaign="qixi-2026")
    assert (card["balance"], card["initial_amount"], card["state"], card["campaign"]) == (
        88_800,
        88_800,
        "active",
        "qixi-2026",
    )
    assert await history(db, card["id"]) == [("issue", 88_800, 88_800)]
    revealed = await cards.reveal_code(db, KEYRING, shop.id, card["id"])
    assert codes.format_code(revealed) == card["code"]


async def test_a_redemption_takes_its_amount_and_a_partial_one_takes_what_there_is(
    db: asyncpg.Connection,
) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 10_000)
    status, paid = await redeem(db, shop.api_key, {"code": card["code"], "amount": 3_250})
    assert status == 201 and (paid["amount_taken"], paid["balance_after"]) == (3_250, 6_750)
    typed = card["code"].replace("-", " ").lower()  # as a person types it
    status, partial = await redeem(db, shop.api_key, {"code": typed, "amount": 12_000, "allow_partial": True})
    assert status == 201
    assert (partial["amount_taken"], partial["remainder_due"], partial["balance_after"]) == (6_750, 5_250, 0)
    status, refused = await redeem(db, shop.api_key, {"code": card["code"], "amount": 1})
    assert status == 402 and refused["code"] == "insufficient_funds" and refused["balance"] == 0
    assert await history(db, card["id"]) == [
        ("issue", 10_000, 10_000),
        ("redeem", -3_250, 6_750),
        ("redeem", -6_750, 0),
    ]


async def test_an_idempotency_key_answers_again_as_the_first_time_and_posts_once(
    db: asyncpg.Connection,
) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 5_000)
    body = {"code": card["code"], "amount": 1_000}
    key = str(uuid.uuid4())
    first = await redeem(db, shop.api_key, body, key=key)
    again = await redeem(db, shop.api_key, body, key=key)
    assert first[0] == again[0] == 201
    assert (first[1].pop("replayed"), again[1].pop("replayed")) == (False, True)
    assert again[1] == first[1]
    assert await redeem(db, shop.api_key, {**body, "amount": 999}, key=key) == (
        422,
        {"code": "idempotency_conflict"},
    )
    assert await balance(db, card["id"]) == 4_000
    assert [kind for kind, _, _ in await history(db, card["id"])] == ["issue", "redeem"]


async def test_another_merchants_code_names_no_card_and_changes_nothing(db: asyncpg.Connection) -> None:
    shop, other = await new_shop(db), await new_shop(db, "Other Brand")
    card = await new_card(db, shop, 5_000)
    status, refused = await redeem(db, other.api_key, {"code": card["code"], "amount": 1})
    unknown = await redeem(db, other.api_key, {"code": codes.format_code(codes.generate_code()), "amount": 1})
    assert (status, refused["code"]) == (unknown[0], unknown[1]["code"]) == (404, "invalid_code")
    with pytest.raises(DomainError) as looked_up:
        await cards.lookup(db, KEYRING, QrKeys(KEYRING), other.id, cards.CardRef(code=card["code"]))
    assert looked_up.value.code == "invalid_code"
    assert await history(db, card["id"]) == [("issue", 5_000, 5_000)]


async def test_refunds_are_tied_to_a_redemption_and_never_exceed_it(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 10_000)
    _, paid = await redeem(db, shop.api_key, {"code": card["code"], "amount": 4_000})
    first = answer(await cards.refund(db, shop.principal, redemption_id=paid["id"], amount=1_500))
    assert (first["balance_after"], first["refundable_amount"], first["refund_of"]) == (
        7_500,
        2_500,
        paid["id"],
    )
    with pytest.raises(DomainError) as too_much:
        await cards.refund(db, shop.principal, redemption_id=paid["id"], amount=2_501)
    assert too_much.value.code == "refund_exceeds_redemption"
    assert too_much.value.extra["refundable_amount"] == 2_500
    rest = answer(await cards.refund(db, shop.principal, redemption_id=paid["id"], amount=None))
    assert (rest["amount"], rest["balance_after"]) == (2_500, 10_000)
    with pytest.raises(DomainError) as nothing_left:
        await cards.refund(db, shop.principal, redemption_id=paid["id"], amount=None)
    assert nothing_left.value.code == "refund_exceeds_redemption"
    listing = answer(await cards.list_activities(db, shop.id, card["id"], limit=10, starting_after=None))
    issue_entry = listing["data"][-1]
    with pytest.raises(DomainError) as not_a_redemption:
        await cards.refund(db, shop.principal, redemption_id=issue_entry["id"], amount=None)
    assert not_a_redemption.value.code == "not_a_redemption"
    assert await history(db, card["id"]) == [
        ("issue", 10_000, 10_000),
        ("redeem", -4_000, 6_000),
        ("refund", 1_500, 7_500),
        ("refund", 2_500, 10_000),
    ]


async def test_block_unblock_and_deactivate_follow_the_card_states(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 1_000)
    loaded = answer(await cards.change(db, shop.principal, card["id"], "load", amount=500))
    assert loaded["balance_after"] == 1_500
    with pytest.raises(DomainError) as other_currency:
        await cards.change(db, shop.principal, card["id"], "load", amount=500, currency="USD")
    assert other_currency.value.code == "currency_mismatch"
    with pytest.raises(DomainError) as below_zero:
        await cards.change(db, shop.principal, card["id"], "adjust", amount=-1_501, reason="x")
    assert below_zero.value.code == "insufficient_funds"
    blocked = answer(await cards.change(db, shop.principal, card["id"], "block"))
    assert blocked["card"]["state"] == "blocked"
    assert (await redeem(db, shop.api_key, {"code": card["code"], "amount": 1}))[1]["code"] == "card_blocked"
    await cards.change(db, shop.principal, card["id"], "unblock")
    with pytest.raises(DomainError) as twice:
        await cards.change(db, shop.principal, card["id"], "unblock")
    assert twice.value.code == "invalid_state_transition"
    gone = answer(await cards.change(db, shop.principal, card["id"], "deactivate", reason="fraud"))
    assert (gone["amount"], gone["balance_after"], gone["card"]["state"]) == (-1_500, 0, "deactivated")
    status, refused = await redeem(db, shop.api_key, {"code": card["code"], "amount": 1})
    assert (status, refused["code"]) == (409, "card_deactivated")
    assert [kind for kind, _, _ in await history(db, card["id"])] == [
        "issue",
        "load",
        "block",
        "unblock",
        "deactivate",
    ]


async def test_a_pending_card_is_spent_only_once_activated(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 2_000, pending=True)
    assert card["state"] == "pending"
    status, refused = await redeem(db, shop.api_key, {"code": card["code"], "amount": 1})
    assert (status, refused["code"]) == (409, "card_not_active")
    activated = answer(await cards.change(db, shop.principal, card["id"], "activate"))
    assert (activated["amount"], activated["card"]["state"]) == (0, "active")
    assert (await redeem(db, shop.api_key, {"code": card["code"], "amount": 2_000}))[1]["balance_after"] == 0


async def test_expiry_writes_the_rest_off_once(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 3_000, expires_at=datetime.now(UTC) + timedelta(days=30))
    await redeem(db, shop.api_key, {"code": card["code"], "amount": 1_000})
    await db.execute("UPDATE cards SET expires_at = now() - interval '1 second' WHERE id = $1", card["id"])
    status, refused = await redeem(db, shop.api_key, {"code": card["code"], "amount": 1})
    assert (status, refused["code"]) == (409, "card_expired")
    assert await cards.expire_due(db) == 1
    assert await cards.expire_due(db) == 0
    assert await history(db, card["id"]) == [
        ("issue", 3_000, 3_000),
        ("redeem", -1_000, 2_000),
        ("expire", -2_000, 0),
    ]

"""What a till may do, decided in the domain and the redemption statement: a clerk's store limit, refunds
of its own store (a clerk's of today only), blocking for managers, and a revoked till's token."""

from __future__ import annotations

import asyncpg
import pytest

from giftcards.core.errors import DomainError
from giftcards.stores import staff_log, terminals
from giftcards.stores.merchants import Principal
from giftcards.value.ledger import activity_id
from tests.support.domain import KEYRING, balance, new_card, new_shop, new_till, redeem
from tests.support.terminals import backdated_redemption


async def principal_of(db: asyncpg.Connection, token: str) -> Principal:
    return await terminals.authenticate(db, KEYRING, token)


async def refusal_of_refund(db: asyncpg.Connection, till: Principal, redemption_id: str) -> str | None:
    try:
        await terminals.authorize_refund(db, till, redemption_id, staff_log.Entry("refund"))
    except DomainError as refused:
        return refused.code
    return None


async def test_a_clerk_is_held_to_its_store_limit_and_a_manager_is_not(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 100_000)
    clerk = await new_till(db, shop, "clerk", redeem_limit=20_000)
    manager = await new_till(db, shop, "manager", redeem_limit=20_000)
    status, above = await redeem(db, clerk, {"code": card["code"], "amount": 20_001})
    assert (status, above["code"], above["limit"]) == (403, "store_limit_exceeded", 20_000)
    assert (await redeem(db, clerk, {"code": card["code"], "amount": 20_000}))[0] == 201
    assert (await redeem(db, manager, {"code": card["code"], "amount": 30_000}))[0] == 201
    assert await balance(db, card["id"]) == 50_000
    rows = await db.fetch("SELECT action, outcome, amount FROM staff_log WHERE action = 'redeem' ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("redeem", "store_limit_exceeded", 20_001),
        ("redeem", "ok", 20_000),
        ("redeem", "ok", 30_000),
    ]


async def test_refunds_are_for_the_own_store_and_a_clerk_refunds_only_today(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 10_000)
    clerk, manager = await new_till(db, shop, "clerk"), await new_till(db, shop, "manager")
    clerk_till, manager_till = await principal_of(db, clerk), await principal_of(db, manager)
    _, by_clerk = await redeem(db, clerk, {"code": card["code"], "amount": 1_000})
    _, elsewhere = await redeem(db, manager, {"code": card["code"], "amount": 1_000})
    assert await refusal_of_refund(db, clerk_till, by_clerk["id"]) is None
    assert await refusal_of_refund(db, clerk_till, elsewhere["id"]) == "refund_not_allowed"
    assert await refusal_of_refund(db, manager_till, by_clerk["id"]) == "refund_not_allowed"
    # Two days on, the clerk's own redemption is a manager's of that store to refund.
    older = await backdated_redemption(
        db, shop.id, clerk_till.id, str(clerk_till.store_id), card["id"], 1_000, days=2
    )
    assert await refusal_of_refund(db, clerk_till, activity_id(older)) == "manager_required"
    same_store_manager = await principal_of(
        db, await new_till(db, shop, "manager", store_id=clerk_till.store_id)
    )
    assert await refusal_of_refund(db, same_store_manager, activity_id(older)) is None
    assert terminals.may_refund(clerk_till, store_id=clerk_till.store_id, today=False) is False
    assert terminals.may_refund(manager_till, store_id=manager_till.store_id, today=False) is True
    with pytest.raises(DomainError) as blocking:
        terminals.authorize_block(clerk_till)
    assert blocking.value.code == "manager_required"
    terminals.authorize_block(manager_till)


async def test_a_revoked_till_is_unknown_from_its_next_call_on(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    card = await new_card(db, shop, 5_000)
    token = await new_till(db, shop)
    till = await principal_of(db, token)
    await terminals.revoke_terminal(db, shop.id, till.id)
    with pytest.raises(DomainError) as unknown:
        await principal_of(db, token)
    assert unknown.value.code == "unauthenticated"
    status, refused = await redeem(db, token, {"code": card["code"], "amount": 1})
    assert (status, refused["code"]) == (401, "unauthenticated")
    assert await balance(db, card["id"]) == 5_000

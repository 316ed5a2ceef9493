"""What a design sells, decided in the domain: its amounts, its sale window, its limited stock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from giftcards.core.errors import DomainError
from giftcards.gifting import designs
from tests.support.domain import Shop, answer, new_design, new_gift, new_shop
from tests.support.gifts import GIFTER


async def refusal(db: asyncpg.Connection, shop: Shop, design_id: str, amount: int = 52000) -> DomainError:
    """Why a gift of `amount` of the design cannot be bought now."""
    with pytest.raises(DomainError) as refused:
        await new_gift(db, shop, GIFTER, design_id=design_id, amount=amount)
    return refused.value


async def test_a_limited_design_sells_exactly_its_stock(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    design = await new_design(db, shop, stock=2)
    for _ in range(2):
        await new_gift(db, shop, GIFTER, design_id=design["id"])
    refused = await refusal(db, shop, design["id"])
    assert (refused.code, refused.extra["design"]) == ("sold_out", design["id"])
    shown = answer(await designs.get(db, shop.id, design["id"]))
    assert (shown["sold"], shown["remaining"]) == (2, 0)
    assert await db.fetchval("SELECT count(*) FROM cards WHERE design_id = $1", design["id"]) == 2


async def test_a_design_sells_only_its_amounts_and_only_within_its_sale(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    now = datetime.now(UTC)
    ranged = await new_design(db, shop, denominations=(52000,), min_amount=1_000, max_amount=10_000)
    assert (await new_gift(db, shop, GIFTER, design_id=ranged["id"], amount=8_800))["amount"] == 8_800
    odd = await refusal(db, shop, ranged["id"], 12_345)
    assert odd.code == "amount_not_offered" and odd.extra["denominations"] == [52000]
    assert (odd.extra["min_amount"], odd.extra["max_amount"]) == (1_000, 10_000)
    later = await new_design(db, shop, sale_starts_at=now + timedelta(days=3))
    assert (await refusal(db, shop, later["id"])).code == "design_not_on_sale"
    ended = await new_design(
        db, shop, sale_starts_at=now - timedelta(days=3), sale_ends_at=now - timedelta(days=1)
    )
    assert "ended" in str((await refusal(db, shop, ended["id"])).detail)
    withdrawn = await new_design(db, shop, active=False)
    assert "withdrawn" in str((await refusal(db, shop, withdrawn["id"])).detail)
    assert await db.fetchval("SELECT count(*) FROM cards") == 1  # only the one sold


async def test_another_merchants_design_is_not_for_sale(db: asyncpg.Connection) -> None:
    shop, other = await new_shop(db), await new_shop(db, "Other Brand")
    design = await new_design(db, shop)
    refused = await refusal(db, other, design["id"])
    assert (refused.status, refused.code) == (404, "design_not_found")
    assert await db.fetchval("SELECT count(*) FROM cards") == 0

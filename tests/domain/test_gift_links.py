"""Gift links in the domain layer: a claim hands the card over once, a revocation or an expiry hands it
back to the gifter, and each later claim says which of these happened."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from giftcards.core.errors import DomainError
from giftcards.gifting import gift_links
from tests.support.domain import KEYRING, PUBLIC_URL, Shop, answer, balance, new_gift, new_shop, owner_of
from tests.support.gifts import FRIEND, GIFTER, secret_of

STRANGER = "o_stranger_openid_0003"


async def claim(db: asyncpg.Connection, link: str, owner: str) -> dict[str, object]:
    return await gift_links.claim(db, KEYRING, secret_of(link), owner, public_url=PUBLIC_URL)


async def refusal(db: asyncpg.Connection, link: str, owner: str) -> str:
    with pytest.raises(DomainError) as refused:
        await claim(db, link, owner)
    return refused.value.code


async def test_a_claim_makes_the_claimant_the_cards_owner_once(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    gift = await new_gift(db, shop, GIFTER)
    card_id = gift["card"]["id"]
    assert await owner_of(db, card_id) is None  # a waiting gift's card is nobody's yet
    claimed = await claim(db, gift["link"], FRIEND)
    assert claimed["gift"] == gift["id"] and claimed["card"]["balance"] == 52000  # type: ignore[index]
    assert str(claimed["card_url"]).startswith(f"{PUBLIC_URL}/c/")
    assert await owner_of(db, card_id) == FRIEND
    assert await db.fetchrow("SELECT state, recipient_id FROM gifts WHERE id = $1", gift["id"]) == (
        "claimed",
        FRIEND,
    )
    assert await refusal(db, gift["link"], STRANGER) == "gift_already_claimed"
    assert await owner_of(db, card_id) == FRIEND and await balance(db, card_id) == 52000


async def test_a_revoked_gift_goes_back_to_its_gifter_and_its_link_says_so(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    gift = await new_gift(db, shop, GIFTER)
    with pytest.raises(DomainError) as not_theirs:
        await gift_links.revoke(db, shop.id, gift["id"], by_owner=STRANGER)
    assert not_theirs.value.code == "gift_not_found"
    revoked = answer(await gift_links.revoke(db, shop.id, gift["id"], by_owner=GIFTER))
    assert revoked["state"] == "revoked"
    assert await owner_of(db, gift["card"]["id"]) == GIFTER
    assert await refusal(db, gift["link"], FRIEND) == "gift_revoked"
    with pytest.raises(DomainError) as again:
        await gift_links.revoke(db, shop.id, gift["id"])
    assert again.value.code == "gift_revoked"


async def test_an_unclaimed_gift_returns_to_its_gifter_when_its_time_is_up(db: asyncpg.Connection) -> None:
    shop = await new_shop(db)
    late = await new_gift(db, shop, GIFTER, recipient_owner_id=FRIEND)
    in_time = await new_gift(db, shop, GIFTER)
    await claim(db, late["link"], FRIEND)  # claimed before expiry: stays claimed
    overdue = await new_gift(db, shop, GIFTER)
    await db.execute(
        """UPDATE gifts SET opens_at = now() - interval '2 seconds', expires_at = now() - interval '1 second'
            WHERE id = ANY($1::text[])""",
        [late["id"], overdue["id"]],
    )
    assert await gift_links.return_expired(db) == 1
    assert await gift_links.return_expired(db) == 0
    states = dict(await db.fetch("SELECT id, state FROM gifts"))
    assert states == {late["id"]: "claimed", in_time["id"]: "waiting", overdue["id"]: "returned"}
    assert await owner_of(db, overdue["card"]["id"]) == GIFTER
    assert await owner_of(db, late["card"]["id"]) == FRIEND
    assert await refusal(db, overdue["link"], FRIEND) == "gift_expired"
    assert await balance(db, overdue["card"]["id"]) == 52000  # the value went back, not away


async def claim_from_wallet(db: asyncpg.Connection, shop: Shop, gift_id: str, owner: str) -> dict[str, Any]:
    return await gift_links.claim_addressed(
        db, KEYRING, shop.id, gift_id, owner, api_key_id=shop.principal.id, public_url=PUBLIC_URL
    )


async def test_a_wallet_claims_only_a_gift_addressed_to_its_owner(db: asyncpg.Connection) -> None:
    shop, other = await new_shop(db), await new_shop(db, "Other Brand")
    addressed = await new_gift(db, shop, GIFTER, recipient_owner_id=FRIEND)
    for merchant, who in ((shop, STRANGER), (shop, GIFTER), (other, FRIEND)):
        with pytest.raises(DomainError) as refused:
            await claim_from_wallet(db, merchant, addressed["id"], who)
        assert refused.value.code == "gift_not_found"
    assert await owner_of(db, addressed["card"]["id"]) is None
    claimed = await claim_from_wallet(db, shop, addressed["id"], FRIEND)
    assert claimed["gift"] == addressed["id"] and await owner_of(db, addressed["card"]["id"]) == FRIEND

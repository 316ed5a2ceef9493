"""What can happen to a waiting gift: it is opened by its link, claimed, revoked, or returned.

Each transition is one transaction that locks the gift row and then the card row, always in that order
(the worker's return takes the same locks in the same order), so two concurrent claims cannot both win, a
claim cannot race a revocation, and no transition deadlocks another.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from giftcards.core.errors import DomainError
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring
from giftcards.core.secret_links import GIFT
from giftcards.db.commits import after_commit
from giftcards.gifting import card_access, designs, gifts
from giftcards.gifting.gifts import effective_state, gift_view
from giftcards.gifting.shapes import Gift
from giftcards.observability import metrics
from giftcards.value import cards


async def open_link(conn: asyncpg.Connection, keyring: Keyring, secret: str) -> asyncpg.Record:
    """The gift a link secret names (with the time now), or one 404 for anything else."""
    row = None
    if GIFT.well_formed(secret):
        row = await conn.fetchrow(
            "SELECT *, now() AS now FROM gifts WHERE claim_hash = $1", GIFT.hash(keyring, secret)
        )
    if row is None:
        raise DomainError("gift_not_found", "this gift link is not valid")
    return row


def link_view(row: asyncpg.Record, design: asyncpg.Record | None) -> dict[str, Any]:
    """What anyone holding the link may see: everything about the gift once it is open, else only when
    it opens. Never the owner ids, never the card."""
    state = effective_state(row, row["now"])
    view: dict[str, Any] = {
        "object": "gift_link",
        "state": state,
        "opens_at": iso(row["opens_at"]),
        "expires_at": iso(row["expires_at"]),
        "sender_name": row["sender_name"],
        "recipient_name": row["recipient_name"],
    }
    if state == "scheduled":
        view["seconds_until_open"] = max(0, int((row["opens_at"] - row["now"]).total_seconds()) + 1)
    if state == "waiting":
        view.update(
            amount=row["amount"],
            currency=row["currency"],
            amount_text=designs.format_money(row["amount"], row["currency"]),
            message=row["message"],
            design=None if design is None else {"name": design["name"], "occasion": design["occasion"]},
        )
    return view


async def claim(
    conn: asyncpg.Connection, keyring: Keyring, secret: str, owner_id: str, *, public_url: str
) -> dict[str, Any]:
    """The recipient takes the card: it becomes theirs, with a card-page link only they get (on the gift
    link's authority, not an API key's: it outlives the key that sold the gift)."""
    async with conn.transaction():
        found = await open_link(conn, keyring, secret)
        view = await _claim(
            conn, keyring, found["merchant_id"], found["id"], owner_id, api_key_id=None, public_url=public_url
        )
    after_commit(conn, metrics.GIFTS_CLAIMED.inc)
    return view


async def claim_addressed(
    conn: asyncpg.Connection,
    keyring: Keyring,
    merchant_id: str,
    gift_id: str,
    owner_id: str,
    *,
    api_key_id: str,
    public_url: str,
) -> dict[str, Any]:
    """The same claim from the recipient's wallet, without the link: only for the owner id the gift was
    addressed to (recipient_owner_id); any other gift answers as unknown. The card-page link is handed
    out on the authority of `api_key_id`, the key that opened the wallet session."""
    async with conn.transaction():
        view = await _claim(
            conn,
            keyring,
            merchant_id,
            gift_id,
            owner_id,
            api_key_id=api_key_id,
            public_url=public_url,
            addressed=True,
        )
    after_commit(conn, metrics.GIFTS_CLAIMED.inc)
    return view


async def _claim(
    conn: asyncpg.Connection,
    keyring: Keyring,
    merchant_id: str,
    gift_id: str,
    owner_id: str,
    *,
    api_key_id: str | None,
    public_url: str,
    addressed: bool = False,
) -> dict[str, Any]:
    row = await gifts.find(conn, merchant_id, gift_id, lock=True)
    if row is None or (addressed and row["recipient_owner_id"] != owner_id):
        raise DomainError("gift_not_found", "no such gift")
    gifts.require_claimable(row)
    card = await conn.fetchrow(
        "SELECT * FROM cards WHERE merchant_id = $1 AND id = $2 FOR UPDATE",
        row["merchant_id"],
        row["card_id"],
    )
    gifts.require_active(card)
    row = await conn.fetchrow(
        """UPDATE gifts SET state = 'claimed', recipient_id = $3, claimed_at = now(), updated_at = now()
           WHERE merchant_id = $1 AND id = $2 RETURNING *, now() AS now""",
        row["merchant_id"],
        row["id"],
        owner_id,
    )
    await _set_owner(conn, row["merchant_id"], row["card_id"], owner_id)
    token = await card_access.grant(
        conn, keyring, row["merchant_id"], row["card_id"], owner_id, api_key_id=api_key_id
    )
    view = await cards.get(conn, row["merchant_id"], row["card_id"])
    return {
        "object": "gift_claim",
        "gift": row["id"],
        "card": {
            k: getattr(view, k) for k in ("id", "state", "balance", "currency", "expires_at", "code_last4")
        },
        "card_url": card_access.card_url(public_url, token),
    }


async def _set_owner(conn: asyncpg.Connection, merchant_id: str, card_id: str, owner_id: str | None) -> None:
    await conn.execute(
        "UPDATE cards SET owner_id = $3, updated_at = now() WHERE merchant_id = $1 AND id = $2",
        merchant_id,
        card_id,
        owner_id,
    )


# -- the gifter's side and the worker --------------------------------------------------------------


async def revoke(
    conn: asyncpg.Connection, merchant_id: str, gift_id: str, *, by_owner: str | None = None
) -> Gift:
    """Withdraw an unclaimed gift: the link stops working and the card is the gifter's again (a card-page
    link for them comes from POST /v1/cards/{id}/access_links, so no secret sits in a stored answer)."""
    async with conn.transaction():
        row = await gifts.find(conn, merchant_id, gift_id, lock=True)
        if row is None or (by_owner is not None and row["gifter_id"] != by_owner):
            raise DomainError("gift_not_found", "no such gift")
        if row["state"] != "waiting":  # an expired gift not yet returned may still be withdrawn
            gifts.require_claimable(row)
        await conn.fetchrow(  # lock order: gift, then card
            "SELECT 1 FROM cards WHERE merchant_id = $1 AND id = $2 FOR UPDATE", merchant_id, row["card_id"]
        )
        row = await conn.fetchrow(
            """UPDATE gifts SET state = 'revoked', revoked_at = now(), updated_at = now()
               WHERE merchant_id = $1 AND id = $2 RETURNING *, now() AS now""",
            merchant_id,
            gift_id,
        )
        await _set_owner(conn, merchant_id, row["card_id"], row["gifter_id"])
    return gift_view(row)


async def return_expired(conn: asyncpg.Connection, *, limit: int = 500) -> int:
    """Give the cards of gifts nobody claimed in time back to their gifters (one statement, locks in
    the same order as a claim: gift rows, then card rows; rows another transaction holds are skipped)."""
    result = await conn.execute(
        """WITH due AS (
               SELECT merchant_id, id FROM gifts WHERE state = 'waiting' AND expires_at <= now()
               ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED),
           returned AS (
               UPDATE gifts g SET state = 'returned', returned_at = now(), updated_at = now()
               FROM due WHERE g.merchant_id = due.merchant_id AND g.id = due.id
               RETURNING g.merchant_id, g.card_id, g.gifter_id)
           UPDATE cards c SET owner_id = returned.gifter_id, updated_at = now()
           FROM returned WHERE c.merchant_id = returned.merchant_id AND c.id = returned.card_id""",
        limit,
    )
    return int(result.split()[-1])

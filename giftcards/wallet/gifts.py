"""Gifts in the wallet: those waiting for the owner (claim them here), those the owner sent (with their
state; withdraw or share them again while they wait), and passing a held card on as a new gift.

Every action is the gift's own transition from `gifts` / `gift_links`, called with the session's merchant
and owner: a gift addressed to someone else, sent by someone else or of another merchant answers as
unknown. Nothing here shows another person's owner id (not even who claimed a gift).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from giftcards.core import ids
from giftcards.core.errors import DomainError, ValidationError
from giftcards.core.sealing import Keyring
from giftcards.core.shapes import PAGE_LIMIT_DEFAULT
from giftcards.gifting import designs, gift_links, gifts
from giftcards.gifting.card_art import CardArt
from giftcards.gifting.gifts import GiftDetails
from giftcards.gifting.lookups import fetch_by_id
from giftcards.gifting.shapes import Gift
from giftcards.wallet.holders import INFINITY, Holder, not_theirs

OPEN_STATES = ("scheduled", "waiting")  # a sent gift that may still be withdrawn or shared again


async def received(
    conn: asyncpg.Connection,
    holder: Holder,
    *,
    limit: int = PAGE_LIMIT_DEFAULT,
    starting_after: str | None = None,
) -> dict[str, Any]:
    """Gifts addressed to the owner that nobody has claimed yet, newest first. A scheduled one shows only
    who sent it and when it opens, as its link does."""
    cursor_at = None
    if starting_after is not None:
        if ids.is_id(starting_after, "gift"):
            cursor_at = await conn.fetchval(
                """SELECT created_at FROM gifts
                   WHERE merchant_id = $1 AND id = $2 AND recipient_owner_id = $3""",
                holder.merchant_id,
                starting_after,
                holder.owner_id,
            )
        if cursor_at is None:
            raise ValidationError([{"field": "starting_after", "message": "names no gift of this list"}])
    rows = await conn.fetch(  # a range scan of gifts_waiting_for_owner
        """SELECT *, now() AS now FROM gifts
           WHERE merchant_id = $1 AND recipient_owner_id = $2 AND state = 'waiting' AND expires_at > now()
             AND (created_at, id) < ($3::timestamptz, $4::text)
           ORDER BY created_at DESC, id DESC LIMIT $5""",
        holder.merchant_id,
        holder.owner_id,
        cursor_at or INFINITY,
        starting_after or "",
        limit + 1,
    )
    items = []
    for row in rows[:limit]:
        view = gift_links.link_view(row, await gifts.design_of(conn, row))
        items.append(
            {**view, "id": row["id"], "object": "received_gift", "can_claim": view["state"] == "waiting"}
        )
    return {"object": "list", "data": items, "has_more": len(rows) > limit}


async def sent(
    conn: asyncpg.Connection,
    holder: Holder,
    *,
    limit: int = PAGE_LIMIT_DEFAULT,
    starting_after: str | None = None,
) -> dict[str, Any]:
    """The gifts the owner sent (bought or passed on), newest first, each with its state."""
    listing = await gifts.list_gifts(
        conn, holder.merchant_id, gifter_id=holder.owner_id, limit=limit, starting_after=starting_after
    )
    return {
        "object": "list",
        "data": [sent_item(view) for view in listing.data],
        "has_more": listing.has_more,
    }


def sent_item(view: Gift) -> dict[str, Any]:
    """What the gifter sees of a gift they sent: never its card's code, nor who claimed it."""
    state = view.state
    return {
        "id": view.id,
        "object": "sent_gift",
        "state": state,
        "amount": view.amount,
        "currency": view.currency,
        "amount_text": designs.format_money(view.amount, view.currency),
        **{
            name: getattr(view, name)
            for name in (
                "sender_name",
                "recipient_name",
                "message",
                "opens_at",
                "expires_at",
                "claimed_at",
                "revoked_at",
                "returned_at",
                "created_at",
            )
        },
        "can_revoke": state in OPEN_STATES,
        "can_share": state in OPEN_STATES,
    }


async def claim(
    conn: asyncpg.Connection, keyring: Keyring, holder: Holder, gift_id: str, *, public_url: str
) -> dict[str, Any]:
    """Take a gift addressed to the owner: the card becomes theirs (the link's claim, without the link)."""
    return await gift_links.claim_addressed(
        conn,
        keyring,
        holder.merchant_id,
        gift_id,
        holder.owner_id,
        api_key_id=holder.api_key_id,
        public_url=public_url,
    )


async def revoke(conn: asyncpg.Connection, holder: Holder, gift_id: str) -> dict[str, Any]:
    """Withdraw a gift the owner sent and nobody claimed: the card is theirs again."""
    view = await gift_links.revoke(conn, holder.merchant_id, gift_id, by_owner=holder.owner_id)
    return sent_item(view)


async def share_link(
    conn: asyncpg.Connection, keyring: Keyring, holder: Holder, gift_id: str, *, public_url: str
) -> dict[str, Any]:
    """The link of a gift the owner sent, to share it once more while it waits."""
    if (await gifts.get(conn, holder.merchant_id, gift_id)).gifter_id != holder.owner_id:
        raise DomainError("gift_not_found", "no such gift")
    return await gifts.share_link(conn, keyring, holder.merchant_id, gift_id, public_url=public_url)


async def pass_on(
    conn: asyncpg.Connection,
    keyring: Keyring,
    holder: Holder,
    card_id: str,
    details: GiftDetails,
    *,
    public_url: str,
) -> dict[str, Any]:
    """Send a held, unspent card as a gift: the answer holds the link to share (the card gets a new code
    and the owner's card-page links stop working, as for any re-gift)."""
    try:
        made = await gifts.send_card(
            conn, keyring, holder.merchant_id, card_id, holder.owner_id, details, public_url=public_url
        )
    except DomainError as exc:
        raise not_theirs(exc) from None
    return {**sent_item(made), "link": made.link, "image_url": made.image_url}


async def picture(conn: asyncpg.Connection, holder: Holder, gift_id: str) -> CardArt:
    """The picture of a gift the owner sent, or of one waiting for them once it is open (not before: a
    scheduled gift is a surprise until it opens)."""
    row = await fetch_by_id(
        conn,
        """SELECT *, now() AS now FROM gifts
           WHERE merchant_id = $1 AND id = $2 AND (gifter_id = $3 OR recipient_owner_id = $3)""",
        holder.merchant_id,
        gift_id,
        "gift",
        holder.owner_id,
    )
    if row is None or (
        row["gifter_id"] != holder.owner_id and gifts.effective_state(row, row["now"]) != "waiting"
    ):
        raise DomainError("gift_not_found", "no such gift")
    return await gifts.art_for(conn, row)

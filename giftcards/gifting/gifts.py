"""Gifts: a card on its way from a gifter to a recipient, carried by a link with a one-time claim secret.

Stored states: waiting → claimed | revoked | returned. Read as well: `scheduled` (waiting, before
`opens_at`: the link shows a countdown, not the card) and, between `expires_at` and the worker's next
pass, `returned`. While a gift waits, its card belongs to nobody (owner_id NULL) and nobody holds its
code: the gifter never sees it, and passing a card on gives it a fresh code. A claim makes the recipient
the owner; a revocation or an expiry gives the card back to the gifter.

This module makes gifts (a purchase, or passing a card on) and reads them; `gift_links` holds what
happens to a waiting one. The claim secret has 192 bits; only its keyed hash is looked up, and it is
kept sealed so the gifter can share the link again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from giftcards.core import ids
from giftcards.core.errors import DomainError, ValidationError
from giftcards.core.isotime import iso, utcnow
from giftcards.core.sealing import Keyring
from giftcards.core.secret_links import GIFT
from giftcards.core.shapes import PAGE_LIMIT_DEFAULT, Page, page
from giftcards.db.commits import transaction
from giftcards.gifting import card_access, designs, images
from giftcards.gifting.card_art import CardArt
from giftcards.gifting.lookups import fetch_by_id
from giftcards.gifting.row_views import view_of
from giftcards.gifting.shapes import CLAIM_WITHIN_HOURS_DEFAULT, Gift, GiftCard
from giftcards.stores.merchants import Principal
from giftcards.value import cards
from giftcards.value.cards import CardSpec
from giftcards.value.shapes import Card

MAX_SCHEDULE_DAYS = 366
Row = Mapping[str, Any]
_CARD_ERRORS = {
    "expired": "card_expired",
    "blocked": "card_blocked",
    "deactivated": "card_deactivated",
    "pending": "card_not_active",
}


@dataclass(frozen=True)
class GiftDetails:
    sender_name: str
    recipient_name: str
    message: str = ""
    photo_id: str | None = None
    opens_at: datetime | None = None  # None or a past time: the link opens at once
    claim_within_hours: int = CLAIM_WITHIN_HOURS_DEFAULT  # after opens_at; then the card goes back
    recipient_owner_id: str | None = None  # who it is meant for: it then waits in their wallet too


@dataclass(frozen=True)
class Purchase:
    design_id: str
    amount: int
    gifter_id: str
    details: GiftDetails
    currency: str | None = None
    reference: str | None = None  # the shop's order or payment id: one gift per reference


def _seal(keyring: Keyring, gift_id: str, secret: str) -> bytes:
    return keyring.box.seal(secret.encode(), context=b"gift-link:" + gift_id.encode())


def _unseal(keyring: Keyring, row: asyncpg.Record) -> str:
    return keyring.box.open(bytes(row["claim_sealed"]), context=b"gift-link:" + row["id"].encode()).decode()


def _check_details(details: GiftDetails) -> None:
    if details.opens_at is not None and details.opens_at > utcnow() + timedelta(days=MAX_SCHEDULE_DAYS):
        raise ValidationError(
            [{"field": "opens_at", "message": f"must be within {MAX_SCHEDULE_DAYS} days from now"}]
        )


async def _check_photo(
    conn: asyncpg.Connection, merchant_id: str, photo_id: str | None, session_id: str | None
) -> None:
    if photo_id is None:
        return
    row = await conn.fetchrow(
        "SELECT purpose, session_id FROM images WHERE merchant_id = $1 AND id = $2", merchant_id, photo_id
    )
    if (
        row is None
        or row["purpose"] != "photo"
        or (session_id is not None and row["session_id"] != session_id)
    ):
        raise DomainError("image_not_found", "photo_id names no photo uploaded for this gift")


async def _insert(
    conn: asyncpg.Connection,
    keyring: Keyring,
    *,
    merchant_id: str,
    card_id: str,
    design_id: str | None,
    amount: int,
    currency: str,
    gifter_id: str,
    details: GiftDetails,
    reference: str | None = None,
    previous_gift_id: str | None = None,
) -> tuple[asyncpg.Record, str]:
    gift_id = ids.new_id("gift")
    secret, claim_hash = GIFT.new(keyring)
    row = await conn.fetchrow(
        """INSERT INTO gifts (merchant_id, id, card_id, design_id, photo_id, gifter_id, sender_name,
                              recipient_name, message, amount, currency, claim_hash, claim_sealed,
                              opens_at, expires_at, reference, previous_gift_id, recipient_owner_id)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                   greatest($14, now()), greatest($14, now()) + make_interval(hours => $15), $16, $17, $18)
           RETURNING *, now() AS now""",
        merchant_id,
        gift_id,
        card_id,
        design_id,
        details.photo_id,
        gifter_id,
        details.sender_name,
        details.recipient_name,
        details.message,
        amount,
        currency,
        claim_hash,
        _seal(keyring, gift_id, secret),
        details.opens_at,
        details.claim_within_hours,
        reference,
        previous_gift_id,
        details.recipient_owner_id,
    )
    return row, secret


async def purchase(
    conn: asyncpg.Connection,
    keyring: Keyring,
    principal: Principal,
    order: Purchase,
    *,
    public_url: str,
    session_id: str | None = None,
) -> Gift:
    """Issue a card of a design and wrap it as a gift, in one transaction (card, ledger, gift, stock)."""
    _check_details(order.details)
    merchant_id = principal.merchant_id
    try:
        async with transaction(conn):  # the card it issues is counted once this commits
            if order.reference is not None:
                await _refuse_duplicate(conn, merchant_id, order.reference)
            design = await designs.offer(conn, merchant_id, order.design_id, order.amount, order.currency)
            await _check_photo(conn, merchant_id, order.details.photo_id, session_id)
            validity = design["card_validity_days"]
            card = await cards.issue(
                conn,
                keyring,
                principal,
                CardSpec(
                    amount=order.amount,
                    currency=design["currency"],
                    expires_at=design["now"] + timedelta(days=validity) if validity else None,
                    design_id=design["id"],
                ),
            )
            row, secret = await _insert(
                conn,
                keyring,
                merchant_id=merchant_id,
                card_id=card.id,
                design_id=design["id"],
                amount=order.amount,
                currency=design["currency"],
                gifter_id=order.gifter_id,
                details=order.details,
                reference=order.reference,
            )
            await designs.take_from_stock(conn, design)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "gifts_reference_unique" and order.reference is not None:
            await _refuse_duplicate(conn, merchant_id, order.reference)
        raise
    # sent_view leaves out the code: whoever claims the gift is the one who may spend it
    return sent_view(row, secret, public_url, card)


async def _refuse_duplicate(conn: asyncpg.Connection, merchant_id: str, reference: str) -> None:
    existing = await conn.fetchval(
        "SELECT id FROM gifts WHERE merchant_id = $1 AND reference = $2", merchant_id, reference
    )
    if existing is not None:
        raise DomainError(
            "duplicate_purchase", "a gift was already bought with this reference", gift=existing
        )


async def send_card(
    conn: asyncpg.Connection,
    keyring: Keyring,
    merchant_id: str,
    card_id: str,
    owner_id: str,
    details: GiftDetails,
    *,
    design_id: str | None = None,
    public_url: str,
) -> Gift:
    """Pass on a claimed, unspent card: its owner wraps it as a new gift. The card gets a new code and
    every card-page link of the owner stops working, so nothing the owner kept can spend it."""
    _check_details(details)
    async with conn.transaction():
        query = "SELECT * FROM cards WHERE merchant_id = $1 AND id = $2 FOR UPDATE"
        card = await fetch_by_id(conn, query, merchant_id, card_id, "card")
        if card is None:
            raise DomainError("card_not_found", "no such card")
        if card["owner_id"] is None and await _waiting_gift(conn, merchant_id, card_id):
            raise DomainError("card_in_transit", "the card is already on its way as a gift")
        if card["owner_id"] != owner_id:
            raise DomainError("not_card_owner", "only the card's owner can pass it on")
        require_active(card)
        spent = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM ledger_entries
                              WHERE merchant_id = $1 AND card_id = $2 AND kind = 'redeem')""",
            merchant_id,
            card_id,
        )
        if spent or card["balance"] <= 0:
            raise DomainError("card_spent", "only a card nothing was spent from can be passed on")
        await _check_photo(conn, merchant_id, details.photo_id, None)
        design_id = await _existing_design(conn, merchant_id, design_id or card["design_id"])
        previous = await conn.fetchval(
            """SELECT id FROM gifts WHERE merchant_id = $1 AND card_id = $2
               ORDER BY created_at DESC LIMIT 1""",
            merchant_id,
            card_id,
        )
        await conn.execute(
            "UPDATE cards SET owner_id = NULL, updated_at = now() WHERE merchant_id = $1 AND id = $2",
            merchant_id,
            card_id,
        )
        await card_access.revoke_all(conn, merchant_id, card_id)
        await cards.replace_code(conn, keyring, merchant_id, card_id)
        row, secret = await _insert(
            conn,
            keyring,
            merchant_id=merchant_id,
            card_id=card_id,
            design_id=design_id,
            amount=card["balance"],
            currency=card["currency"],
            gifter_id=owner_id,
            details=details,
            previous_gift_id=previous,
        )
        view = await cards.get(conn, merchant_id, card_id)
    return sent_view(row, secret, public_url, view)


async def _waiting_gift(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> bool:
    return bool(
        await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM gifts
                              WHERE merchant_id = $1 AND card_id = $2 AND state = 'waiting')""",
            merchant_id,
            card_id,
        )
    )


async def _existing_design(conn: asyncpg.Connection, merchant_id: str, design_id: str | None) -> str | None:
    """A design id that names a design (cards issued by the API may carry a free-text design_id)."""
    if design_id is None:
        return None
    return await conn.fetchval(
        "SELECT id FROM designs WHERE merchant_id = $1 AND id = $2", merchant_id, design_id
    )


def require_active(card: asyncpg.Record) -> None:
    state = cards.effective_state(card["state"], card["expires_at"])
    if state != "active":
        raise DomainError(_CARD_ERRORS[state], f"the card is {state}")


async def share_link(
    conn: asyncpg.Connection, keyring: Keyring, merchant_id: str, gift_id: str, *, public_url: str
) -> dict[str, Any]:
    """The link again, for the gifter to share once more while the gift waits."""
    row = await _fetch(conn, merchant_id, gift_id)
    if row["state"] != "waiting":
        require_claimable(row)
    secret = _unseal(keyring, row)
    return {
        "object": "gift_link",
        "gift": gift_id,
        "url": GIFT.url(public_url, secret),
        "image_url": GIFT.url(public_url, secret) + "/card.png",
    }


async def find(
    conn: asyncpg.Connection, merchant_id: str, gift_id: str, *, lock: bool = False
) -> asyncpg.Record | None:
    query = "SELECT *, now() AS now FROM gifts WHERE merchant_id = $1 AND id = $2"
    return await fetch_by_id(conn, query + (" FOR UPDATE" if lock else ""), merchant_id, gift_id, "gift")


async def _fetch(conn: asyncpg.Connection, merchant_id: str, gift_id: str) -> asyncpg.Record:
    row = await find(conn, merchant_id, gift_id)
    if row is None:
        raise DomainError("gift_not_found", "no such gift")
    return row


async def get(conn: asyncpg.Connection, merchant_id: str, gift_id: str) -> Gift:
    return gift_view(await _fetch(conn, merchant_id, gift_id))


async def list_gifts(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    gifter_id: str | None = None,
    recipient_id: str | None = None,
    card_id: str | None = None,
    limit: int = PAGE_LIMIT_DEFAULT,
    starting_after: str | None = None,
) -> Page[Gift]:
    """Newest first, filtered by who sent, who received or which card."""
    cursor_at = (await _fetch(conn, merchant_id, starting_after))["created_at"] if starting_after else None
    rows = await conn.fetch(
        """SELECT *, now() AS now FROM gifts
           WHERE merchant_id = $1
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             AND ($4::text IS NULL OR gifter_id = $4)
             AND ($5::text IS NULL OR recipient_id = $5)
             AND ($6::text IS NULL OR card_id = $6)
           ORDER BY created_at DESC, id DESC LIMIT $7""",
        merchant_id,
        cursor_at,
        starting_after,
        gifter_id,
        recipient_id,
        card_id,
        limit + 1,
    )
    return page([gift_view(row) for row in rows], limit)


async def art_for(conn: asyncpg.Connection, row: asyncpg.Record) -> CardArt:
    """The picture of a gift: its design (or a plain look), its photo, amount, message and names."""
    design = await _design(conn, row["merchant_id"], row["design_id"])
    return designs.art(
        design,
        amount=row["amount"],
        currency=row["currency"],
        message=row["message"],
        sender_name=row["sender_name"],
        recipient_name=row["recipient_name"],
        cover=await images.data_of(conn, row["merchant_id"], design["cover_image_id"] if design else None),
        photo=await images.data_of(conn, row["merchant_id"], row["photo_id"]),
    )


async def _design(conn: asyncpg.Connection, merchant_id: str, design_id: str | None) -> asyncpg.Record | None:
    if design_id is None:
        return None
    return await conn.fetchrow(
        "SELECT * FROM designs WHERE merchant_id = $1 AND id = $2", merchant_id, design_id
    )


async def design_of(conn: asyncpg.Connection, row: asyncpg.Record) -> asyncpg.Record | None:
    return await _design(conn, row["merchant_id"], row["design_id"])


def effective_state(row: Row, now: datetime) -> str:
    if row["state"] != "waiting":
        return str(row["state"])
    if now < row["opens_at"]:
        return "scheduled"
    if now >= row["expires_at"]:
        return "returned"  # the worker gives the card back within seconds
    return "waiting"


def gift_view(row: Row) -> Gift:
    state = effective_state(row, row["now"])
    returned_at = row["returned_at"] or (row["expires_at"] if state == "returned" else None)
    return view_of(
        Gift,
        row,
        state=state,
        card=row["card_id"],
        design=row["design_id"],
        photo=row["photo_id"],
        returned_at=iso(returned_at),
        previous_gift=row["previous_gift_id"],
    )


def sent_view(row: Row, secret: str, public_url: str, card: Card) -> Gift:
    """The answer to the gifter: the gift with its card expanded (never its code) and the link to share."""
    url = GIFT.url(public_url, secret)
    shown = view_of(GiftCard, msgspec.structs.asdict(card))
    return msgspec.structs.replace(gift_view(row), card=shown, link=url, image_url=url + "/card.png")


async def preview_art(
    conn: asyncpg.Connection,
    merchant_id: str,
    design_id: str,
    amount: int,
    details: GiftDetails,
    *,
    session_id: str | None = None,
) -> CardArt:
    """The picture a gift would have, before anything is bought."""
    design = await designs.fetch(conn, merchant_id, design_id)
    await _check_photo(conn, merchant_id, details.photo_id, session_id)
    return designs.art(
        design,
        amount=amount,
        currency=design["currency"],
        message=details.message,
        sender_name=details.sender_name,
        recipient_name=details.recipient_name,
        cover=await images.data_of(conn, merchant_id, design["cover_image_id"]),
        photo=await images.data_of(conn, merchant_id, details.photo_id),
    )


def require_claimable(row: asyncpg.Record) -> None:
    state = effective_state(row, row["now"])
    if state == "scheduled":
        raise DomainError(
            "gift_not_yet_open",
            "this gift opens later",
            opens_at=iso(row["opens_at"]),
            seconds_until_open=max(0, int((row["opens_at"] - row["now"]).total_seconds()) + 1),
        )
    refusals = {
        "claimed": ("gift_already_claimed", "this gift has already been claimed"),
        "revoked": ("gift_revoked", "the sender withdrew this gift"),
        "returned": ("gift_expired", "this gift was not claimed in time and went back to the sender"),
    }
    if state in refusals:
        raise DomainError(*refusals[state])

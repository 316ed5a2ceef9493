"""Customise sessions: the shop's backend lets a gifter compose and send one gift on our page.

The shop (authenticated by its API key) vouches for the gifter's owner id and authorises one purchase of
at most `max_amount` — like a card payment's authorisation, captured for the amount the gifter chooses.
The link carries a 192-bit secret stored only as a keyed hash; it works for a limited time and buys
exactly once (the session row is locked for the purchase, which marks it used in the same transaction).
It stops for good when the shop revokes it, or revokes the API key that made it: the purchase is made on
that key's authority, so a leaked key's links must not outlive it.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from giftcards.core import ids
from giftcards.core.errors import DomainError
from giftcards.core.sealing import Keyring
from giftcards.core.secret_links import CUSTOMISE
from giftcards.core.shapes import given
from giftcards.db.commits import transaction
from giftcards.gifting import designs, gifts, images, shapes
from giftcards.gifting.card_art import CardArt
from giftcards.gifting.images import CleanImage
from giftcards.gifting.lookups import fetch_by_id
from giftcards.gifting.row_views import view_of
from giftcards.gifting.shapes import CUSTOMISE_MINUTES_DEFAULT
from giftcards.stores.merchants import Principal

MAX_PHOTOS = 10


async def create(
    conn: asyncpg.Connection,
    keyring: Keyring,
    principal: Principal,
    *,
    owner_id: str,
    max_amount: int,
    currency: str = "CNY",
    sender_name: str | None = None,
    reference: str | None = None,
    minutes: int = CUSTOMISE_MINUTES_DEFAULT,
    public_url: str,
) -> shapes.CustomiseSession:
    token, token_hash = CUSTOMISE.new(keyring)
    row = await conn.fetchrow(
        """INSERT INTO customise_sessions (merchant_id, id, token_hash, api_key_id, owner_id, sender_name,
                                           currency, max_amount, reference, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(mins => $10))
           RETURNING *, now() AS now""",
        principal.merchant_id,
        ids.new_id("cus"),
        token_hash,
        principal.id,
        owner_id,
        sender_name,
        currency,
        max_amount,
        reference,
        minutes,
    )
    return msgspec.structs.replace(session_view(row), url=CUSTOMISE.url(public_url, token))


# The session and, in the same statement, the key it was made with. To buy (`lock`), the session row is
# locked and the key row shared: a revocation of the key waits for a purchase under way, and a purchase
# waits for a revocation under way and then sees it. So no card is issued on a key once its revocation
# has been answered, in any server process.
RESOLVE = """SELECT s.*, now() AS now, k.revoked_at AS key_revoked_at
    FROM customise_sessions s JOIN api_keys k ON k.merchant_id = s.merchant_id AND k.id = s.api_key_id
    WHERE s.token_hash = $1"""


async def resolve(
    conn: asyncpg.Connection, keyring: Keyring, token: str, *, lock: bool = False
) -> asyncpg.Record:
    """The live session a link names: one 404 for anything unknown, `session_revoked` once the shop
    revoked the session or the API key that made it."""
    row = None
    if CUSTOMISE.well_formed(token):
        query = RESOLVE + (" FOR UPDATE OF s FOR SHARE OF k" if lock else "")
        row = await conn.fetchrow(query, CUSTOMISE.hash(keyring, token))
    if row is None:
        raise DomainError("not_found", "this customise link is not valid")
    if row["revoked_at"] is not None or row["key_revoked_at"] is not None:
        raise DomainError("session_revoked", "the shop has withdrawn this link; ask the shop for a new one")
    return row


_REVOKE = """UPDATE customise_sessions SET revoked_at = coalesce(revoked_at, now())
             WHERE merchant_id = $1 AND id = $2 RETURNING *, now() AS now"""


async def revoke(conn: asyncpg.Connection, merchant_id: str, session_id: str) -> shapes.CustomiseSession:
    """End a link before its time (e.g. the order was cancelled): it sends nothing more and no longer
    shows the gift it sent. A gift already sent stays sent: it is paid for and its link is the recipient's."""
    row = await fetch_by_id(conn, _REVOKE, merchant_id, session_id, "cus")
    if row is None:
        raise DomainError("not_found", "no such customise session")
    return session_view(row)


def require_open(row: asyncpg.Record) -> None:
    if row["used_at"] is not None:
        raise DomainError(
            "session_used", "this link has already been used to send a gift", gift=row["gift_id"]
        )
    if row["now"] >= row["expires_at"]:
        raise DomainError("session_expired", "this link has expired; ask the shop for a new one")


async def page(
    conn: asyncpg.Connection, keyring: Keyring, row: asyncpg.Record, *, public_url: str
) -> dict[str, Any]:
    """What the page offers: the designs on sale now in the session's currency and the amounts of each
    that fit the authorised maximum; once used, the link of the gift that was sent."""
    merchant = await conn.fetchval("SELECT name FROM merchants WHERE id = $1", row["merchant_id"])
    listing = await designs.list_designs(
        conn, row["merchant_id"], limit=100, on_sale=True, currency=row["currency"]
    )
    offered = []
    for design in listing.data:
        amounts = [a for a in design.denominations if a <= row["max_amount"]]
        low, high = design.min_amount, design.max_amount
        free = (
            None
            if low is None or low > row["max_amount"]
            else {"min": low, "max": min(high, row["max_amount"])}
        )
        if amounts or free:
            offered.append({**msgspec.structs.asdict(design), "amounts": amounts, "free_range": free})
    view: dict[str, Any] = {
        **given(session_view(row)),
        "merchant": {"name": merchant},
        "designs": offered,
    }
    if row["gift_id"] is not None:
        gift = await gifts.get(conn, row["merchant_id"], row["gift_id"])
        view["sent"] = {"gift": gift.id, "state": gift.state}
        if gift.state in ("waiting", "scheduled"):
            view["sent"] |= await gifts.share_link(
                conn, keyring, row["merchant_id"], row["gift_id"], public_url=public_url
            )
    return view


async def upload_photo(
    conn: asyncpg.Connection, keyring: Keyring, token: str, image: CleanImage
) -> shapes.Image:
    async with conn.transaction():
        row = await resolve(conn, keyring, token, lock=True)
        require_open(row)
        count = await conn.fetchval(
            "SELECT count(*) FROM images WHERE merchant_id = $1 AND session_id = $2",
            row["merchant_id"],
            row["id"],
        )
        if count >= MAX_PHOTOS:
            raise DomainError("invalid_request", f"at most {MAX_PHOTOS} photos per gift")
        return await images.store(conn, row["merchant_id"], "photo", image, session_id=row["id"])


async def complete(
    conn: asyncpg.Connection,
    keyring: Keyring,
    token: str,
    *,
    design_id: str,
    amount: int,
    details: gifts.GiftDetails,
    public_url: str,
) -> shapes.Gift:
    """Send the gift the page composed: one purchase on the shop's authority, then the link is spent."""
    async with transaction(conn):  # the card its purchase issues is counted once this commits
        row = await resolve(conn, keyring, token, lock=True)
        require_open(row)
        if amount > row["max_amount"]:
            raise DomainError(
                "amount_above_authorised",
                "choose an amount within what the shop authorised",
                max_amount=row["max_amount"],
            )
        shop = Principal("api_key", row["api_key_id"], row["merchant_id"])
        order = gifts.Purchase(
            design_id=design_id,
            amount=amount,
            gifter_id=row["owner_id"],
            details=details,
            currency=row["currency"],
            reference=row["reference"],
        )
        sent = await gifts.purchase(conn, keyring, shop, order, public_url=public_url, session_id=row["id"])
        await conn.execute(
            "UPDATE customise_sessions SET used_at = now(), gift_id = $3 WHERE merchant_id = $1 AND id = $2",
            row["merchant_id"],
            row["id"],
            sent.id,
        )
    return sent


async def preview(
    conn: asyncpg.Connection,
    keyring: Keyring,
    token: str,
    *,
    design_id: str,
    amount: int,
    details: gifts.GiftDetails,
) -> CardArt:
    row = await resolve(conn, keyring, token)
    require_open(row)
    return await gifts.preview_art(conn, row["merchant_id"], design_id, amount, details, session_id=row["id"])


async def design_art(conn: asyncpg.Connection, keyring: Keyring, token: str, design_id: str) -> CardArt:
    """A design's look with a sample amount, for the page's list of designs."""
    row = await resolve(conn, keyring, token)
    design = await designs.fetch(conn, row["merchant_id"], design_id)
    amount = design["denominations"][0] if design["denominations"] else design["min_amount"]
    return designs.art(
        design,
        amount=amount,
        currency=design["currency"],
        cover=await images.data_of(conn, row["merchant_id"], design["cover_image_id"]),
    )


def session_state(row: asyncpg.Record) -> str:
    if row["revoked_at"]:
        return "revoked"
    if row["used_at"]:
        return "used"
    return "expired" if row["now"] >= row["expires_at"] else "open"


def session_view(row: asyncpg.Record) -> shapes.CustomiseSession:
    return view_of(shapes.CustomiseSession, row, state=session_state(row), gift=row["gift_id"])

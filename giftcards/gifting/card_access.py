"""The owner's card page: who may see a card, its code and its rotating QR, by a secret in the link.

A token (192 random bits) is handed to the owner when they claim a gift (or by the shop's backend for its
customer); only its keyed hash is stored. It opens the page while it is not revoked and while the card
still belongs to the owner it was given to: passing the card on revokes every token of the card, and a
token of a former owner stops working even if a revocation were missed.

A token the shop's backend asked for — directly, or through a wallet session — was handed to whoever held
the API key, and the page reveals the card's code (also a code that replaced a leaked one), so it names
the key and ends when the key is revoked. A token handed to a gift's claimant names no key and stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from giftcards.core import ids
from giftcards.core.errors import DomainError
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring
from giftcards.core.secret_links import CARD_PAGE
from giftcards.gifting import designs, images
from giftcards.gifting.card_art import CardArt
from giftcards.gifting.lookups import fetch_by_id
from giftcards.qr.keys import QrKeys
from giftcards.value import cards
from giftcards.value.shapes import Card

HISTORY_LIMIT = 50
QR_REFRESH_SECONDS = 20  # the page fetches a fresh payload this often; each is good for 30 to 60 s


@dataclass(frozen=True)
class Access:
    id: str
    merchant_id: str
    card_id: str
    owner_id: str


card_url = CARD_PAGE.url


async def grant(
    conn: asyncpg.Connection,
    keyring: Keyring,
    merchant_id: str,
    card_id: str,
    owner_id: str,
    *,
    api_key_id: str | None,
    exclusive: bool = True,
) -> str:
    """A new token for the card's owner; `exclusive` first revokes every other token of the card.
    `api_key_id` is the key on whose authority it is handed out (None: a gift link's claim)."""
    if exclusive:
        await revoke_all(conn, merchant_id, card_id)
    token, token_hash = CARD_PAGE.new(keyring)
    await conn.execute(
        """INSERT INTO card_access (merchant_id, id, card_id, owner_id, token_hash, api_key_id)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        merchant_id,
        ids.new_id("cax"),
        card_id,
        owner_id,
        token_hash,
        api_key_id,
    )
    return token


async def grant_to_owner(
    conn: asyncpg.Connection,
    keyring: Keyring,
    merchant_id: str,
    card_id: str,
    owner_id: str,
    *,
    api_key_id: str,
) -> str:
    """For the shop's backend (`api_key_id`, directly or through a wallet session): another device of the
    current owner (existing tokens stay valid)."""
    async with conn.transaction():
        query = "SELECT owner_id FROM cards WHERE merchant_id = $1 AND id = $2 FOR SHARE"
        card = await fetch_by_id(conn, query, merchant_id, card_id, "card")
        if card is None:
            raise DomainError("card_not_found", "no such card")
        if card["owner_id"] != owner_id:
            raise DomainError("not_card_owner", "the card does not belong to this owner")
        return await grant(
            conn, keyring, merchant_id, card_id, owner_id, api_key_id=api_key_id, exclusive=False
        )


async def revoke_all(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> None:
    await conn.execute(
        """UPDATE card_access SET revoked_at = now()
           WHERE merchant_id = $1 AND card_id = $2 AND revoked_at IS NULL""",
        merchant_id,
        card_id,
    )


async def resolve(conn: asyncpg.Connection, keyring: Keyring, token: str) -> Access:
    """The access a token gives, or one and the same 404 for unknown, revoked and outdated tokens, and for
    the tokens of a revoked API key (checked in the same statement, so at once in every process)."""
    row = None
    if CARD_PAGE.well_formed(token):
        row = await conn.fetchrow(
            """SELECT a.id, a.merchant_id, a.card_id, a.owner_id FROM card_access a
               JOIN cards c ON c.merchant_id = a.merchant_id AND c.id = a.card_id
               LEFT JOIN api_keys k ON k.merchant_id = a.merchant_id AND k.id = a.api_key_id
               WHERE a.token_hash = $1 AND a.revoked_at IS NULL AND c.owner_id = a.owner_id
                 AND (a.api_key_id IS NULL OR (k.id IS NOT NULL AND k.revoked_at IS NULL))""",
            CARD_PAGE.hash(keyring, token),
        )
    if row is None:
        raise DomainError("not_found", "this card link is not valid (any more)")
    return Access(row["id"], row["merchant_id"], row["card_id"], row["owner_id"])


async def page(conn: asyncpg.Connection, access: Access) -> dict[str, Any]:
    """What the owner's page shows: the card, the gift it came as, and its history of spending."""
    card = await cards.get(conn, access.merchant_id, access.card_id)
    gift = await conn.fetchrow(
        """SELECT g.id, g.design_id, g.sender_name, g.recipient_name, g.message, g.amount, g.claimed_at,
                  d.name AS design_name, d.occasion
           FROM gifts g LEFT JOIN designs d ON d.merchant_id = g.merchant_id AND d.id = g.design_id
           WHERE g.merchant_id = $1 AND g.card_id = $2 AND g.state = 'claimed' AND g.recipient_id = $3
           ORDER BY g.claimed_at DESC LIMIT 1""",
        access.merchant_id,
        access.card_id,
        access.owner_id,
    )
    entries = await conn.fetch(
        """SELECT id, kind, amount, balance_after, currency, created_at FROM ledger_entries
           WHERE merchant_id = $1 AND card_id = $2 ORDER BY id DESC LIMIT $3""",
        access.merchant_id,
        access.card_id,
        HISTORY_LIMIT,
    )
    merchant = await conn.fetchval("SELECT name FROM merchants WHERE id = $1", access.merchant_id)
    return {
        "object": "card_page",
        "merchant": {"name": merchant},
        "card": {
            "id": card.id,
            "state": card.state,
            "balance": card.balance,
            "currency": card.currency,
            "initial_amount": card.initial_amount,
            "expires_at": card.expires_at,
            "code_last4": card.code_last4,
            "design_id": card.design_id,
        },
        "gift": None
        if gift is None
        else {
            "id": gift["id"],
            "sender_name": gift["sender_name"],
            "recipient_name": gift["recipient_name"],
            "message": gift["message"],
            "design_name": gift["design_name"],
            "occasion": gift["occasion"],
            "claimed_at": iso(gift["claimed_at"]),
        },
        "history": [
            {
                "type": entry["kind"],
                "amount": entry["amount"],
                "balance_after": entry["balance_after"],
                "currency": entry["currency"],
                "created_at": iso(entry["created_at"]),
            }
            for entry in entries
        ],
        "can_pay": card.state == "active" and card.balance > 0,
        "wechat": await wechat_ready(conn, access.merchant_id),
    }


async def wechat_ready(conn: asyncpg.Connection, merchant_id: str) -> bool:
    """Whether the merchant has WeChat set up (the table arrives with the WeChat migration)."""
    if not await conn.fetchval("SELECT to_regclass('wechat_accounts') IS NOT NULL"):
        return False
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM wechat_accounts WHERE merchant_id = $1)", merchant_id
        )
    )


async def reveal_code(conn: asyncpg.Connection, keyring: Keyring, access: Access) -> str:
    return await cards.reveal_code(conn, keyring, access.merchant_id, access.card_id)


async def rotating_qr(conn: asyncpg.Connection, qr_keys: QrKeys, access: Access) -> dict[str, Any]:
    """A payload signed for the current time step: a till accepts it for this step and the next only,
    so a screenshot stops working within a minute."""
    row = await cards.fetch(conn, access.merchant_id, access.card_id)
    card = cards.card_view(row)
    if card.state != "active" or card.balance <= 0:
        raise _not_payable(card)
    step = cards.current_step()
    payload = await cards.sign_qr(conn, qr_keys, row, step=step)
    return {
        "object": "qr_payload",
        "payload": payload,
        "step": step,
        "step_seconds": cards.QR_STEP_SECONDS,
        "refresh_after_seconds": QR_REFRESH_SECONDS,
        "balance": card.balance,
        "currency": card.currency,
    }


def _not_payable(card: Card) -> DomainError:
    state = card.state
    if state == "active":
        return DomainError("insufficient_funds", "the card has been used up", balance=0)
    code = {
        "expired": "card_expired",
        "blocked": "card_blocked",
        "deactivated": "card_deactivated",
        "pending": "card_not_active",
    }[state]
    return DomainError(code, f"the card is {state}")


async def art(conn: asyncpg.Connection, access: Access) -> CardArt:
    """The card's picture for its owner: the gift it came as, else its design at its first amount."""
    gift = await conn.fetchrow(
        """SELECT * FROM gifts WHERE merchant_id = $1 AND card_id = $2 AND state = 'claimed'
                                 AND recipient_id = $3
           ORDER BY claimed_at DESC LIMIT 1""",
        access.merchant_id,
        access.card_id,
        access.owner_id,
    )
    card = await conn.fetchrow(
        "SELECT design_id, initial_amount, currency FROM cards WHERE merchant_id = $1 AND id = $2",
        access.merchant_id,
        access.card_id,
    )
    design_id = gift["design_id"] if gift is not None else card["design_id"]
    design = None
    if design_id is not None:
        design = await conn.fetchrow(
            "SELECT * FROM designs WHERE merchant_id = $1 AND id = $2", access.merchant_id, design_id
        )
    return designs.art(
        design,
        amount=gift["amount"] if gift is not None else card["initial_amount"],
        currency=card["currency"],
        message=gift["message"] if gift is not None else "",
        sender_name=gift["sender_name"] if gift is not None else "",
        recipient_name=gift["recipient_name"] if gift is not None else "",
        cover=await images.data_of(conn, access.merchant_id, design["cover_image_id"] if design else None),
        photo=await images.data_of(conn, access.merchant_id, gift["photo_id"] if gift is not None else None),
    )

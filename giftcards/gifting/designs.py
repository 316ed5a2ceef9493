"""Occasion designs: how a card looks, which amounts it is sold in, and — for a limited edition — how many.

A limited design's stock is taken with one conditional UPDATE (`sold < stock`) inside the purchase's own
transaction: the row lock orders concurrent buyers, each re-checks the condition on the committed row,
and a purchase that fails later rolls its increment back. So exactly `stock` cards are ever issued. A
design without stock is never written to on purchase, so a popular one does not become a hot row.
"""

from __future__ import annotations

from typing import Any, get_args

import asyncpg

from giftcards.core import ids
from giftcards.core.errors import DomainError, ValidationError
from giftcards.core.isotime import iso
from giftcards.core.shapes import PAGE_LIMIT_DEFAULT, Page, page
from giftcards.gifting.card_art import CardArt
from giftcards.gifting.lookups import fetch_by_id
from giftcards.gifting.row_views import view_of
from giftcards.gifting.shapes import Design, DesignSpec, Occasion

OCCASIONS = get_args(Occasion)
# ISO 4217 minor-unit exponents that are not 2.
_EXPONENTS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3}
_SYMBOLS = {
    "CNY": "¥",
    "JPY": "¥",
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "HKD": "HK$",
    "TWD": "NT$",
    "KRW": "₩",
}
# How a card that was issued without a design looks when it is passed on as a gift.
PLAIN_LOOK = {"background_color": "#1f2933", "accent_color": "#52606d", "text_color": "#ffffff"}


def format_money(amount: int, currency: str) -> str:
    """¥520.00, HK$88.50, ¥5000 (JPY): for pictures and pages, never for arithmetic."""
    exponent = _EXPONENTS.get(currency, 2)
    symbol = _SYMBOLS.get(currency, currency + " ")
    if exponent == 0:
        return f"{symbol}{amount:,}"
    whole, part = divmod(amount, 10**exponent)
    return f"{symbol}{whole:,}.{part:0{exponent}d}"


def _check(spec: DesignSpec) -> None:
    errors = []
    if not spec.denominations and spec.min_amount is None:
        errors.append({"field": "denominations", "message": "give denominations or min_amount/max_amount"})
    if (spec.min_amount is None) != (spec.max_amount is None):
        errors.append({"field": "max_amount", "message": "give both min_amount and max_amount, or neither"})
    elif spec.min_amount is not None and spec.max_amount is not None and spec.min_amount > spec.max_amount:
        errors.append({"field": "min_amount", "message": "must not exceed max_amount"})
    if len(set(spec.denominations)) != len(spec.denominations):
        errors.append({"field": "denominations", "message": "must not repeat an amount"})
    if spec.sale_starts_at and spec.sale_ends_at and spec.sale_starts_at >= spec.sale_ends_at:
        errors.append({"field": "sale_ends_at", "message": "must be after sale_starts_at"})
    if errors:
        raise ValidationError(errors)


async def _check_cover(conn: asyncpg.Connection, merchant_id: str, image_id: str | None) -> None:
    if image_id is None:
        return
    purpose = await conn.fetchval(
        "SELECT purpose FROM images WHERE merchant_id = $1 AND id = $2", merchant_id, image_id
    )
    if purpose != "cover":
        raise DomainError("image_not_found", "cover_image_id names no cover image of yours")


async def create(conn: asyncpg.Connection, merchant_id: str, spec: DesignSpec) -> Design:
    _check(spec)
    await _check_cover(conn, merchant_id, spec.cover_image_id)
    row = await conn.fetchrow(
        """INSERT INTO designs (merchant_id, id, name, occasion, background_color, accent_color, text_color,
                                cover_image_id, currency, denominations, min_amount, max_amount, stock,
                                sale_starts_at, sale_ends_at, card_validity_days, active)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
           RETURNING *""",
        merchant_id,
        ids.new_id("dsn"),
        spec.name,
        spec.occasion,
        spec.background_color,
        spec.accent_color,
        spec.text_color,
        spec.cover_image_id,
        spec.currency,
        sorted(spec.denominations),
        spec.min_amount,
        spec.max_amount,
        spec.stock,
        spec.sale_starts_at,
        spec.sale_ends_at,
        spec.card_validity_days,
        spec.active,
    )
    return design_view(row)


_MUTABLE = (
    "name",
    "active",
    "stock",
    "sale_starts_at",
    "sale_ends_at",
    "cover_image_id",
    "background_color",
    "accent_color",
    "text_color",
)


async def update(
    conn: asyncpg.Connection, merchant_id: str, design_id: str, changes: dict[str, Any]
) -> Design:
    """Change what may change after publication; the amounts on sale and the currency may not."""
    async with conn.transaction():
        row = await fetch(conn, merchant_id, design_id, lock=True)
        merged = {name: changes.get(name, row[name]) for name in _MUTABLE}
        if merged["stock"] is not None and merged["stock"] < row["sold"]:
            raise ValidationError([{"field": "stock", "message": f"must be at least the {row['sold']} sold"}])
        starts, ends = merged["sale_starts_at"], merged["sale_ends_at"]
        if starts is not None and ends is not None and starts >= ends:
            raise ValidationError([{"field": "sale_ends_at", "message": "must be after sale_starts_at"}])
        if "cover_image_id" in changes:
            await _check_cover(conn, merchant_id, merged["cover_image_id"])
        row = await conn.fetchrow(
            """UPDATE designs SET name = $3, active = $4, stock = $5, sale_starts_at = $6, sale_ends_at = $7,
                                  cover_image_id = $8, background_color = $9, accent_color = $10,
                                  text_color = $11, updated_at = now()
               WHERE merchant_id = $1 AND id = $2 RETURNING *""",
            merchant_id,
            design_id,
            *(merged[name] for name in _MUTABLE),
        )
    return design_view(row)


async def fetch(
    conn: asyncpg.Connection, merchant_id: str, design_id: str, *, lock: bool = False
) -> asyncpg.Record:
    query = "SELECT *, now() AS now FROM designs WHERE merchant_id = $1 AND id = $2"
    row = await fetch_by_id(conn, query + (" FOR UPDATE" if lock else ""), merchant_id, design_id, "dsn")
    if row is None:
        raise DomainError("design_not_found", "no such design")
    return row


async def get(conn: asyncpg.Connection, merchant_id: str, design_id: str) -> Design:
    return design_view(await fetch(conn, merchant_id, design_id))


async def list_designs(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    limit: int = PAGE_LIMIT_DEFAULT,
    starting_after: str | None = None,
    occasion: str | None = None,
    on_sale: bool | None = None,
    currency: str | None = None,
) -> Page[Design]:
    """Newest first. `on_sale` keeps only what can be bought right now (active, in window, in stock)."""
    cursor_at = None
    if starting_after is not None:
        cursor_at = (await fetch(conn, merchant_id, starting_after))["created_at"]
    rows = await conn.fetch(
        """SELECT * FROM designs
           WHERE merchant_id = $1
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             AND ($4::text IS NULL OR occasion = $4)
             AND ($5::boolean IS NULL OR $5 = (active
                  AND (sale_starts_at IS NULL OR sale_starts_at <= now())
                  AND (sale_ends_at IS NULL OR sale_ends_at > now())
                  AND (stock IS NULL OR sold < stock)))
             AND ($6::text IS NULL OR currency = $6)
           ORDER BY created_at DESC, id DESC LIMIT $7""",
        merchant_id,
        cursor_at,
        starting_after,
        occasion,
        on_sale,
        currency,
        limit + 1,
    )
    return page([design_view(row) for row in rows], limit)


def amount_offered(row: asyncpg.Record, amount: int) -> bool:
    if amount in row["denominations"]:
        return True
    return row["min_amount"] is not None and row["min_amount"] <= amount <= row["max_amount"]


async def offer(
    conn: asyncpg.Connection, merchant_id: str, design_id: str, amount: int, currency: str | None = None
) -> asyncpg.Record:
    """The design, once checked that one card of `amount` may be sold now (stock as last committed)."""
    row = await fetch(conn, merchant_id, design_id)
    _check_on_sale(row)
    if currency is not None and currency != row["currency"]:
        raise DomainError("currency_mismatch", f"this design is sold in {row['currency']}")
    if not amount_offered(row, amount):
        raise DomainError(
            "amount_not_offered",
            "choose one of the design's denominations or an amount within its limits",
            denominations=list(row["denominations"]),
            min_amount=row["min_amount"],
            max_amount=row["max_amount"],
        )
    return row


async def take_from_stock(conn: asyncpg.Connection, design: asyncpg.Record) -> None:
    """Take one card of a limited design from its stock, or refuse if the last one went meanwhile.

    Call last in the purchase's transaction: the increment stands or falls with the card, and the
    design's row, which every purchase of the edition must lock, stays locked only until the commit."""
    if design["stock"] is None:
        return
    taken = await conn.fetchval(
        """UPDATE designs SET sold = sold + 1, updated_at = now()
           WHERE merchant_id = $1 AND id = $2 AND active AND (stock IS NULL OR sold < stock)
             AND (sale_starts_at IS NULL OR sale_starts_at <= now())
             AND (sale_ends_at IS NULL OR sale_ends_at > now())
           RETURNING true""",
        design["merchant_id"],
        design["id"],
    )
    if taken:
        return
    _check_on_sale(await fetch(conn, design["merchant_id"], design["id"]))
    raise DomainError("sold_out", "every card of this limited design has been sold", design=design["id"])


def _check_on_sale(row: asyncpg.Record) -> None:
    if not row["active"]:
        raise _not_on_sale(row, "this design has been withdrawn")
    if row["sale_starts_at"] is not None and row["now"] < row["sale_starts_at"]:
        raise _not_on_sale(row, "the sale of this design has not started yet", "sale_starts_at")
    if row["sale_ends_at"] is not None and row["now"] >= row["sale_ends_at"]:
        raise _not_on_sale(row, "the sale of this design has ended", "sale_ends_at")
    if row["stock"] is not None and row["sold"] >= row["stock"]:
        raise DomainError("sold_out", "every card of this limited design has been sold", design=row["id"])


def _not_on_sale(row: asyncpg.Record, detail: str, window_edge: str | None = None) -> DomainError:
    """The refusal for a design outside its sale, naming the edge of the window it is outside of."""
    edge = {window_edge: iso(row[window_edge])} if window_edge else {}
    return DomainError("design_not_on_sale", detail, design=row["id"], **edge)


def art(
    design: asyncpg.Record | None,
    *,
    amount: int,
    currency: str,
    message: str = "",
    sender_name: str = "",
    recipient_name: str = "",
    cover: bytes | None = None,
    photo: bytes | None = None,
) -> CardArt:
    look: dict[str, Any] = (
        dict(design) if design is not None else {**PLAIN_LOOK, "occasion": "other", "name": ""}
    )
    return CardArt(
        background_color=look["background_color"],
        accent_color=look["accent_color"],
        text_color=look["text_color"],
        occasion=look["occasion"],
        title=look["name"],
        amount_text=format_money(amount, currency),
        message=message,
        sender_name=sender_name,
        recipient_name=recipient_name,
        cover=cover,
        photo=photo,
    )


def design_view(row: asyncpg.Record) -> Design:
    stock = row["stock"]
    return view_of(
        Design,
        row,
        denominations=list(row["denominations"]),
        remaining=None if stock is None else stock - row["sold"],
    )

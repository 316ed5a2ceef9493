"""Designs, images, gifts and customise sessions as the API takes and gives them, each declared once
(see core/shapes.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from giftcards.core.shapes import DateTime, PageQuery, Timestamp
from giftcards.value.shapes import Amount, Currency

Occasion = Literal["qixi", "520", "valentines", "spring_festival", "birthday", "thank_you", "other"]
ImagePurpose = Literal["cover", "photo"]
Color = Annotated[
    str,
    Meta(pattern="^#[0-9a-f]{6}$", extra_json_schema={"x-pattern-message": "must be a colour like #8b1e3f"}),
]
Id = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern="^[A-Za-z0-9_-]+$",
        extra_json_schema={"x-pattern-message": "must be an id such as dsn_…"},
    ),
]
DesignName = Annotated[str, Meta(min_length=1, max_length=100)]
Stock = Annotated[int, Meta(ge=0, le=10_000_000)]
ValidityDays = Annotated[int, Meta(ge=1, le=3660)]


# -- designs and images ---------------------------------------------------------------------------------


class DesignSpec(Struct, forbid_unknown_fields=True, kw_only=True):
    """A new design: a fixed list of denominations, or a free range (min_amount to max_amount)."""

    name: DesignName
    occasion: Occasion
    currency: Currency = "CNY"
    background_color: Color = "#8b1e3f"
    accent_color: Color = "#f7c5cc"
    text_color: Color = "#ffffff"
    cover_image_id: Id | None = None
    denominations: Annotated[list[Amount], Meta(max_length=12)] = []
    min_amount: Amount | None = None
    max_amount: Amount | None = None
    stock: Stock | None = None
    sale_starts_at: DateTime | None = None
    sale_ends_at: DateTime | None = None
    card_validity_days: ValidityDays | None = None
    active: bool = True


class DesignChange(Struct, forbid_unknown_fields=True, kw_only=True):
    """What may change once a design is published; a field left out keeps its value, null clears it."""

    name: DesignName | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    stock: Stock | UnsetType | None = UNSET
    sale_starts_at: DateTime | UnsetType | None = UNSET
    sale_ends_at: DateTime | UnsetType | None = UNSET
    cover_image_id: Id | UnsetType | None = UNSET
    background_color: Color | UnsetType = UNSET
    accent_color: Color | UnsetType = UNSET
    text_color: Color | UnsetType = UNSET


class DesignQuery(PageQuery, forbid_unknown_fields=True):
    starting_after: Id | None = None
    occasion: Occasion | None = None
    on_sale: bool | None = None


class ImageQuery(Struct, forbid_unknown_fields=True):
    purpose: ImagePurpose


class Design(Struct, kw_only=True):
    id: str
    object: Literal["design"] = "design"
    name: str
    occasion: Occasion
    background_color: str
    accent_color: str
    text_color: str
    cover_image_id: str | None
    currency: str
    denominations: list[int]
    min_amount: int | None
    max_amount: int | None
    stock: int | None
    sold: int
    remaining: int | None
    sale_starts_at: Timestamp | None
    sale_ends_at: Timestamp | None
    card_validity_days: int | None
    active: bool
    created_at: Timestamp
    updated_at: Timestamp


class Image(Struct, kw_only=True):
    id: str
    object: Literal["image"] = "image"
    purpose: ImagePurpose
    media_type: str
    width: int
    height: int
    bytes: int
    created_at: Timestamp

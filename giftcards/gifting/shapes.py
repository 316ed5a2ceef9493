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


# -- gifts and customise sessions -----------------------------------------------------------------------

CLAIM_WITHIN_HOURS_DEFAULT = 72
CUSTOMISE_MINUTES_DEFAULT = 60
OwnerId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=128,
        pattern="^[\\x21-\\x7e]+$",
        description="The person's opaque id in the shop (e.g. a WeChat openid)",
        extra_json_schema={"x-pattern-message": "must be visible ASCII, e.g. a WeChat openid"},
    ),
]
RecipientOwnerId = Annotated[
    OwnerId,
    Meta(
        description="Optional: the recipient's own id (e.g. their openid); the gift then also waits in "
        "their wallet. The link still works for whoever holds it."
    ),
]
PersonName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=40,
        pattern="^[^\\x00-\\x1f\\x7f]+$",
        extra_json_schema={"x-pattern-message": "must not contain control characters"},
    ),
]
Message = Annotated[
    str,
    Meta(
        max_length=200,
        pattern="^[^\\x00-\\x09\\x0b-\\x1f\\x7f]*$",
        description="Any Unicode (Chinese, emoji); always shown escaped, never as markup",
        extra_json_schema={"x-pattern-message": "must not contain control characters other than line breaks"},
    ),
]
OrderReference = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern="^[^\\x00-\\x1f\\x7f]+$",
        description="Your order or payment id: one gift per reference",
        extra_json_schema={"x-pattern-message": "must not contain control characters"},
    ),
]


class GiftText(Struct, forbid_unknown_fields=True, kw_only=True):
    """What a gift says and when it opens."""

    sender_name: PersonName = ""
    recipient_name: PersonName = ""
    message: Message = ""
    opens_at: (
        Annotated[DateTime, Meta(description="Scheduled delivery: before it the link shows a countdown")]
        | None
    ) = None
    claim_within_hours: Annotated[
        int,
        Meta(
            ge=1,
            le=720,
            description="After opens_at; an unclaimed gift then goes back to the gifter (default 72)",
        ),
    ] = CLAIM_WITHIN_HOURS_DEFAULT


class GiftFields(GiftText, forbid_unknown_fields=True, kw_only=True):
    """A gift's text and, on its picture, a photo uploaded first."""

    photo_id: Id | None = None


class NamedGift(GiftFields, forbid_unknown_fields=True, kw_only=True):
    """A gift to send: the sender and the recipient are named."""

    sender_name: PersonName
    recipient_name: PersonName


class GiftPreview(GiftFields, forbid_unknown_fields=True, kw_only=True):
    design_id: Id
    amount: Amount


class ComposedGift(NamedGift, forbid_unknown_fields=True, kw_only=True):
    design_id: Id
    amount: Amount


class GiftPurchase(NamedGift, forbid_unknown_fields=True, kw_only=True):
    design_id: Id
    amount: Amount
    currency: Currency | None = None
    gifter_id: OwnerId
    reference: OrderReference | None = None
    recipient_owner_id: RecipientOwnerId | None = None


class Regift(NamedGift, forbid_unknown_fields=True, kw_only=True):
    owner_id: OwnerId
    design_id: Id | None = None
    recipient_owner_id: RecipientOwnerId | None = None


class GiftQuery(PageQuery, forbid_unknown_fields=True, kw_only=True):
    starting_after: Id | None = None
    gifter_id: OwnerId | None = None
    recipient_id: OwnerId | None = None
    card_id: Id | None = None


class Owner(Struct, forbid_unknown_fields=True):
    owner_id: OwnerId


class RevokeGift(Struct, forbid_unknown_fields=True):
    owner_id: Annotated[OwnerId, Meta(description="If given, must be the gifter")] | None = None


class CreateCustomiseSession(Struct, forbid_unknown_fields=True, kw_only=True):
    owner_id: OwnerId
    max_amount: Annotated[Amount, Meta(description="What the gifter paid or authorised")]
    currency: Currency = "CNY"
    sender_name: PersonName | None = None
    reference: OrderReference | None = None
    expires_in_minutes: Annotated[int, Meta(ge=5, le=1440)] = CUSTOMISE_MINUTES_DEFAULT


class CardPageQrQuery(Struct, forbid_unknown_fields=True):
    image: Literal["svg", "png", "none"] = "svg"


GiftState = Literal["scheduled", "waiting", "claimed", "revoked", "returned"]


class GiftCard(Struct, kw_only=True):
    """The card a gift was made with, as its gifter sees it (never its code)."""

    id: str
    state: str
    balance: int
    currency: str
    expires_at: Timestamp | None
    design_id: str | None


class Gift(Struct, kw_only=True):
    id: str
    object: Literal["gift"] = "gift"
    state: GiftState
    card: str | GiftCard  # the card's id; the card itself in the answer that makes the gift
    design: str | None
    photo: str | None
    amount: int
    currency: str
    gifter_id: str
    recipient_id: str | None
    recipient_owner_id: str | None
    sender_name: str
    recipient_name: str
    message: str
    opens_at: Timestamp | None
    expires_at: Timestamp | None
    claimed_at: Timestamp | None
    revoked_at: Timestamp | None
    returned_at: Timestamp | None
    reference: str | None
    previous_gift: str | None
    created_at: Timestamp
    link: str | UnsetType = UNSET  # only when the gift is made: the link to share
    image_url: str | UnsetType = UNSET  # only when the gift is made: its picture


class CustomiseSession(Struct, kw_only=True):
    id: str
    object: Literal["customise_session"] = "customise_session"
    state: Literal["open", "used", "expired", "revoked"]
    owner_id: str
    sender_name: str | None
    currency: str
    max_amount: int
    reference: str | None
    expires_at: Timestamp
    gift: Annotated[str | None, Meta(description="The gift it sent, once used")]
    revoked_at: Timestamp | None
    created_at: Timestamp
    url: str | UnsetType = UNSET  # only when made: the link for the gifter

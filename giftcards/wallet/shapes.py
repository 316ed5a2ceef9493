"""The wallet's requests and answers, each declared once (see core/shapes.py). The answers are built as
dicts (wallet/holders.py, wallet/gifts.py); these Structs are what the OpenAPI document says of them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from giftcards.core.shapes import PAGE_LIMIT_DEFAULT, Limit, PageQuery, Timestamp
from giftcards.gifting.shapes import GiftText, Id, OwnerId, PersonName

SESSION_MINUTES_DEFAULT = 30
SESSION_MINUTES_MIN, SESSION_MINUTES_MAX = 5, 1440  # the database refuses more than a day
CardFilter = Literal["active", "used_up", "expired"]
DisplayName = Annotated[PersonName, Meta(description="The customer's name, offered as the sender's")]


class CreateWalletSession(Struct, forbid_unknown_fields=True, kw_only=True):
    owner_id: OwnerId
    expires_in_minutes: Annotated[
        int,
        Meta(
            ge=SESSION_MINUTES_MIN,
            le=SESSION_MINUTES_MAX,
            description=f"How long the link works (default {SESSION_MINUTES_DEFAULT})",
        ),
    ] = SESSION_MINUTES_DEFAULT
    display_name: (
        Annotated[PersonName, Meta(description="The customer's name, offered as the sender's")] | None
    ) = None


class WalletCardQuery(Struct, forbid_unknown_fields=True, kw_only=True):
    status: CardFilter | None = None
    limit: Limit = PAGE_LIMIT_DEFAULT
    cursor: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class GiftPageQuery(PageQuery, forbid_unknown_fields=True, kw_only=True):
    starting_after: Id | None = None


class PassOn(GiftText, forbid_unknown_fields=True, kw_only=True):
    """A held card passed on as a gift (no photo of one's own: the card keeps its design)."""

    sender_name: PersonName
    recipient_name: PersonName
    recipient_owner_id: OwnerId | None = None


class WalletSession(Struct, kw_only=True):
    id: str
    object: Literal["wallet_session"] = "wallet_session"
    state: Literal["active", "expired", "revoked"]
    owner_id: str
    display_name: str | None
    expires_at: Timestamp
    revoked_at: Timestamp | None
    created_at: Timestamp
    url: str | UnsetType = UNSET  # only when made: the wallet link to open
    token: str | UnsetType = UNSET  # only when made: the wallet API's Bearer token


class WalletCard(Struct, kw_only=True):
    id: str
    object: Literal["wallet_card"] = "wallet_card"
    status: Literal["active", "used_up", "expired", "deactivated"]
    state: Literal["pending", "active", "blocked", "deactivated", "expired"]
    balance: int
    initial_amount: int
    currency: str
    balance_text: str
    expires_at: Timestamp | None
    code_last4: str
    design: dict[str, Any] | None
    from_name: str | None
    can_pay: bool
    can_send: bool
    thumbnail_url: str
    created_at: Timestamp


class WalletCardPage(Struct, kw_only=True):
    """The cards held, a page at a time: pass `next_cursor` as `cursor` for the next page."""

    object: Literal["list"] = "list"
    data: list[WalletCard]
    has_more: bool = False
    next_cursor: str | None = None


class SentGift(Struct, kw_only=True):
    id: str
    object: Literal["sent_gift"] = "sent_gift"
    state: Literal["scheduled", "waiting", "claimed", "revoked", "returned"]
    amount: int
    currency: str
    recipient_name: str
    can_revoke: bool
    can_share: bool
    thumbnail_url: str


OnceOpen = Meta(description="Only once the gift is open")


class ReceivedGift(Struct, kw_only=True):
    id: str
    object: Literal["received_gift"] = "received_gift"
    state: Literal["scheduled", "waiting"]
    sender_name: str
    opens_at: Timestamp
    amount: Annotated[int, OnceOpen] | UnsetType = UNSET
    message: Annotated[str, OnceOpen] | UnsetType | None = UNSET
    can_claim: bool
    thumbnail_url: str | None


class WalletOverview(Struct, kw_only=True):
    """The wallet at a glance (wallet/holders.overview)."""

    object: Literal["wallet"] = "wallet"
    merchant: dict[str, Any]
    display_name: str | None
    session_expires_at: Timestamp
    counts: dict[str, int]
    totals: list[dict[str, Any]]
    wechat: bool  # the merchant has the WeChat card wallet

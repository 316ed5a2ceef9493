"""The wallet's requests and sessions, each declared once (see core/shapes.py); its other answers are still
written out in web/api/wallet.py."""

from __future__ import annotations

from typing import Annotated, Literal

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

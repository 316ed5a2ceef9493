"""The merchants', stores', terminals' and staff log's requests and answers, each declared once (see
core/shapes.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from giftcards.core.shapes import PAGE_LIMIT_DEFAULT, Cursor, DateTime, Limit, Timestamp
from giftcards.value.shapes import MAX_AMOUNT, CardReference

Name = Annotated[str, Meta(min_length=1, max_length=200)]


class CreateMerchant(Struct, forbid_unknown_fields=True):
    name: Name


class CreateApiKey(Struct, forbid_unknown_fields=True):
    label: Annotated[str, Meta(max_length=200)] = ""


class Merchant(Struct, kw_only=True):
    id: str
    object: Literal["merchant"] = "merchant"
    name: str
    created_at: Timestamp


class ApiKey(Struct, kw_only=True):
    id: str
    object: Literal["api_key"] = "api_key"
    label: str
    last4: str
    created_at: Timestamp
    revoked_at: Timestamp | None
    secret: str | UnsetType = UNSET  # only in the answer that creates the key


class NewMerchant(Merchant, kw_only=True):
    """A merchant just created, with its first API key (whose secret is shown only here)."""

    api_key: ApiKey


# -- stores, terminals and the staff log ----------------------------------------------------------------

Plain = Annotated[str, Meta(pattern="^[^\\x00-\\x1f\\x7f]+$")]  # no control characters
PlainId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern="^[a-z0-9_]+$",
        extra_json_schema={"x-pattern-message": "is not an id"},
    ),
]
Role = Literal["clerk", "manager"]
Outcome = Annotated[
    str,
    Meta(pattern="^[a-z_]{2,40}$", extra_json_schema={"x-pattern-message": "must be ok or a problem code"}),
]
StaffAction = Literal["authenticate", "enroll", "lookup", "redeem", "refund", "block"]
StoreName = Annotated[str, Meta(min_length=1, max_length=200, pattern="^[^\\x00-\\x1f\\x7f]+$")]
TerminalLabel = Annotated[str, Meta(min_length=1, max_length=100, pattern="^[^\\x00-\\x1f\\x7f]+$")]
RedeemLimit = Annotated[
    int,
    Meta(
        ge=1,
        le=MAX_AMOUNT,
        description="The most a clerk terminal may take in one redemption, in minor units; null: no limit",
    ),
]
TimeZone = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=64,
        pattern="^[A-Za-z0-9_+/-]+$",
        description="IANA, e.g. Asia/Shanghai",
        extra_json_schema={"x-pattern-message": "must be an IANA time zone, e.g. Asia/Shanghai"},
    ),
]


class StoreChange(Struct, forbid_unknown_fields=True, kw_only=True):
    """A field left out stays as it is; a null redeem_limit removes the limit."""

    name: StoreName | UnsetType = UNSET
    redeem_limit: RedeemLimit | UnsetType | None = UNSET
    timezone: TimeZone | UnsetType = UNSET


class CreateStore(Struct, forbid_unknown_fields=True, kw_only=True):
    name: StoreName
    redeem_limit: RedeemLimit | None = None
    timezone: TimeZone = "Asia/Shanghai"


class CreateTerminal(Struct, forbid_unknown_fields=True, kw_only=True):
    store: PlainId
    label: TerminalLabel
    role: Role = "clerk"


class TerminalChange(Struct, forbid_unknown_fields=True, kw_only=True):
    label: TerminalLabel | None = None
    role: Role | None = None


class TerminalQuery(Struct, forbid_unknown_fields=True):
    store: PlainId | None = None


class StaffLogFilters(Struct, forbid_unknown_fields=True, kw_only=True):
    terminal: PlainId | None = None
    store: PlainId | None = None
    action: StaffAction | None = None
    outcome: (
        Annotated[
            str,
            Meta(
                pattern="^[a-z_]{2,40}$",
                extra_json_schema={"x-pattern-message": "must be ok or a problem code"},
            ),
        ]
        | None
    ) = None
    flagged: bool | None = None
    created_gte: DateTime | None = None
    created_lt: DateTime | None = None


class StaffLogQuery(StaffLogFilters, forbid_unknown_fields=True, kw_only=True):
    limit: Limit = PAGE_LIMIT_DEFAULT
    starting_after: Cursor | None = None


class Enroll(Struct, forbid_unknown_fields=True):
    code: Annotated[str, Meta(min_length=1, max_length=40)]


class BlockCard(CardReference, forbid_unknown_fields=True, kw_only=True):
    reason: Annotated[str, Meta(min_length=1, max_length=200, pattern="^[^\\x00-\\x1f\\x7f]+$")] | None = None


class Store(Struct, kw_only=True):
    id: str
    object: Literal["store"] = "store"
    name: str
    redeem_limit: int | None
    timezone: str
    created_at: Timestamp
    updated_at: Timestamp


class Enrollment(Struct):
    """A terminal's one-time enrollment code."""

    code: str
    expires_at: Timestamp


class Terminal(Struct, kw_only=True):
    id: str
    object: Literal["terminal"] = "terminal"
    store: str | Store  # the store's id; the store itself when the terminal asks who it is
    label: str
    role: Role
    state: Literal["awaiting_enrollment", "active", "revoked"]
    token_last4: str | None
    enrolled_at: Timestamp | None
    revoked_at: Timestamp | None
    flagged_at: Timestamp | None
    created_at: Timestamp
    enrollment: Enrollment | UnsetType = UNSET  # only when the terminal is created or rotated
    token: str | UnsetType = UNSET  # only in the enrollment answer


class TerminalRedemption(Struct, kw_only=True):
    id: str
    object: Literal["redemption"] = "redemption"
    card: str
    code_last4: str
    amount_taken: int
    refundable_amount: int
    currency: str
    reference: str | None
    can_refund: bool
    created_at: Timestamp


class StaffLogEntry(Struct, kw_only=True):
    id: str
    object: Literal["staff_log_entry"] = "staff_log_entry"
    terminal: str
    store: str
    action: StaffAction
    outcome: Annotated[str, Meta(description="ok, or the problem code of the refusal")]
    card: str | None
    code_last4: str | None
    amount: int | None
    currency: str | None
    activity: str | None
    flagged: bool
    client_address: str | None
    created_at: Timestamp

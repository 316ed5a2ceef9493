"""Cards, batches and activities as the API takes and gives them, each declared once (see core/shapes.py).

An activity has one shape whatever produced it: its `card` is always an object. The answer to a posting
just made says the card's state and balance after it; a card's history names only the card's id.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from giftcards.core.shapes import Cursor, DateTime, PageQuery, Reference, Timestamp

MAX_AMOUNT = 100_000_000  # minor units; the schema's card_maximum() (a test checks they agree)

Amount = Annotated[int, Meta(ge=1, le=MAX_AMOUNT, description="Minor units (fen)")]
SignedAmount = Annotated[
    int,
    Meta(ge=-MAX_AMOUNT, le=MAX_AMOUNT, description="Minor units, not zero: positive adds, negative takes"),
]
Currency = Annotated[
    str,
    Meta(
        pattern="^[A-Z]{3}$", extra_json_schema={"x-pattern-message": "must be an ISO 4217 code such as CNY"}
    ),
]
ShortText = Annotated[str, Meta(min_length=1, max_length=100)]
Reason = Annotated[str, Meta(min_length=1, max_length=200)]
TypedCode = Annotated[str, Meta(min_length=1, max_length=64, description="The card code as typed")]
QrPayload = Annotated[str, Meta(min_length=1, max_length=512, description="The scanned QR payload")]
CardState = Literal["pending", "active", "blocked", "deactivated", "expired"]
ActivityKind = Literal[
    "issue", "activate", "load", "redeem", "refund", "adjust", "expire", "block", "unblock", "deactivate"
]
BATCH_MAX = 100_000


# -- requests -------------------------------------------------------------------------------------------


class IssueCard(Struct, forbid_unknown_fields=True):
    amount: Amount
    currency: Currency = "CNY"
    expires_at: DateTime | None = None
    campaign: ShortText | None = None
    design_id: ShortText | None = None
    state: Annotated[Literal["active", "pending"], Meta(description="pending cards need activation")] = (
        "active"
    )


class IssueBatch(IssueCard, forbid_unknown_fields=True, kw_only=True):
    count: Annotated[int, Meta(ge=1, le=BATCH_MAX)]


class CardQuery(PageQuery, forbid_unknown_fields=True):
    state: CardState | None = None
    campaign: ShortText | None = None
    created_gte: DateTime | None = None
    created_lt: DateTime | None = None


class CardReference(Struct, forbid_unknown_fields=True, kw_only=True):
    """Exactly one of `code` and `qr_payload`, neither null (a redemption hands its body on as sent)."""

    code: TypedCode | UnsetType = UNSET
    qr_payload: QrPayload | UnsetType = UNSET

    def __post_init__(self) -> None:
        if (self.code is UNSET) == (self.qr_payload is UNSET):
            raise ValueError("give exactly one of code and qr_payload")


class Redeem(CardReference, forbid_unknown_fields=True, kw_only=True):
    amount: Amount
    currency: Currency | UnsetType = UNSET
    allow_partial: Annotated[bool, Meta(description="take what there is and report the remainder due")] = (
        False
    )
    reference: Reference | UnsetType = UNSET


class Refund(Struct, forbid_unknown_fields=True):
    redemption: Cursor
    amount: Amount | None = None
    reference: Reference | None = None


class Load(Struct, forbid_unknown_fields=True):
    amount: Amount
    currency: Currency | None = None
    reference: Reference | None = None


class Adjust(Struct, forbid_unknown_fields=True):
    amount: SignedAmount
    reason: Reason
    reference: Reference | None = None


class StateChange(Struct, forbid_unknown_fields=True):
    reason: Reason | None = None
    reference: Reference | None = None


# -- answers --------------------------------------------------------------------------------------------


class Card(Struct, kw_only=True):
    id: str
    object: Literal["card"] = "card"
    state: CardState
    balance: int
    currency: str
    initial_amount: int
    expires_at: Timestamp | None
    campaign: str | None
    design_id: str | None
    batch_id: str | None
    owner_id: str | None
    code_last4: str
    created_at: Timestamp
    updated_at: Timestamp
    code: str | UnsetType = UNSET  # only in the answer that issues the card


class CardBatch(Struct, kw_only=True):
    id: str
    object: Literal["card_batch"] = "card_batch"
    count: int
    amount: int
    currency: str
    created_at: Timestamp


class BatchCard(Struct):
    """One line of a batch's export."""

    id: str
    code: str
    balance: int
    currency: str
    state: str
    expires_at: Timestamp | None


class CardCode(Struct, kw_only=True):
    object: Literal["card_code"] = "card_code"
    card: str
    code: str


class StaticQr(Struct, kw_only=True):
    object: Literal["qr_payload"] = "qr_payload"
    card: str
    payload: str
    length: int


class ActivityCard(Struct, kw_only=True):
    id: str
    state: CardState | UnsetType = UNSET
    balance: int | UnsetType = UNSET
    currency: str | UnsetType = UNSET


class ActivityActor(Struct):
    type: str
    id: str


class Activity(Struct, kw_only=True):
    id: str
    object: Literal["activity"] = "activity"
    type: ActivityKind
    card: ActivityCard
    amount: int
    balance_after: int
    currency: str
    # in a card's history
    reason: str | UnsetType | None = UNSET
    refund_of: str | UnsetType | None = UNSET
    actor: ActivityActor | UnsetType = UNSET
    store: str | UnsetType | None = UNSET
    reference: str | UnsetType | None = UNSET
    created_at: Timestamp
    # in the answer to a redemption
    amount_taken: int | UnsetType = UNSET
    requested_amount: int | UnsetType = UNSET
    remainder_due: int | UnsetType = UNSET
    # in the answer to a refund
    refundable_amount: int | UnsetType | None = UNSET

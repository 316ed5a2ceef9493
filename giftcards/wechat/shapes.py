"""The WeChat back office's requests and answers and the callback's query, each declared once (see
core/shapes.py). The answers are built as dicts (wechat/accounts.py, wechat/backoffice.py); these
Structs are what the OpenAPI document says of them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from giftcards.wechat.accounts import DEFAULT_BASE_URL

APPID_PATTERN = "^wx[0-9a-f]{16}$"
SECRET_PATTERN = "^[A-Za-z0-9]{16,64}$"  # noqa: S105 (a shape, not a secret)
CALLBACK_TOKEN_PATTERN = "^[A-Za-z0-9_-]{3,64}$"  # noqa: S105
AES_KEY_PATTERN = "^[A-Za-z0-9+/]{43}$"  # WeChat makes them alphanumeric; any base64 works

Text = Annotated[str, Meta(min_length=1, max_length=200)]
Limit = Annotated[int, Meta(ge=1, le=100)]


class PutAccount(Struct, forbid_unknown_fields=True, kw_only=True):
    """A secret left out keeps its stored value."""

    appid: Annotated[str, Meta(pattern=APPID_PATTERN)]
    secret: Annotated[str, Meta(pattern=SECRET_PATTERN)] | None = None
    callback_token: Annotated[str, Meta(pattern=CALLBACK_TOKEN_PATTERN)] | None = None
    encoding_aes_key: (
        Annotated[
            str,
            Meta(
                pattern=AES_KEY_PATTERN,
                description="43 characters: safe (AES) mode; null: back to plain mode",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET
    base_url: Annotated[str, Meta(max_length=200, description=DEFAULT_BASE_URL)] | None = None


class SyncDesign(Struct, forbid_unknown_fields=True, kw_only=True):
    """How the design's WeChat card looks; a field left out takes the design's or the merchant's."""

    logo_url: Annotated[str, Meta(pattern="^https?://", max_length=500)]
    title: Text | UnsetType = UNSET
    brand_name: Text | UnsetType = UNSET
    color: Annotated[str, Meta(pattern="^Color[0-9]{3}$")] | UnsetType = UNSET
    notice: Text | UnsetType = UNSET
    description: Annotated[str, Meta(min_length=1, max_length=1000)] | UnsetType = UNSET
    service_phone: Annotated[str, Meta(max_length=24)] | UnsetType = UNSET
    can_give_friend: bool | UnsetType = UNSET
    code_type: Literal["CODE_TYPE_QRCODE", "CODE_TYPE_BARCODE", "CODE_TYPE_TEXT"] | UnsetType = UNSET


class SyncBatch(Struct, forbid_unknown_fields=True):
    limit: Annotated[int, Meta(ge=1, le=5000)] = 1000


class CardExt(Struct, forbid_unknown_fields=True):
    openid: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class OutboxQuery(Struct, forbid_unknown_fields=True, kw_only=True):
    state: Literal["pending", "delivered", "parked", "skipped"] | None = None
    card: Annotated[str, Meta(max_length=64)] | None = None
    limit: Limit = 20
    starting_after: Annotated[str, Meta(max_length=40)] | None = None


class DiscrepancyQuery(Struct, forbid_unknown_fields=True, kw_only=True):
    resolved: bool | None = None
    limit: Limit = 20


CallbackValue = Annotated[str, Meta(max_length=512)]


class CallbackQuery(Struct, kw_only=True):
    """What WeChat signs a push with (other parameters are ignored)."""

    signature: CallbackValue | UnsetType = UNSET
    timestamp: CallbackValue | UnsetType = UNSET
    nonce: CallbackValue | UnsetType = UNSET
    echostr: CallbackValue | UnsetType = UNSET
    openid: CallbackValue | UnsetType = UNSET
    encrypt_type: CallbackValue | UnsetType = UNSET
    msg_signature: CallbackValue | UnsetType = UNSET


class WeChatAccount(Struct, kw_only=True):
    """The secrets are write-only: the answer says they are set, never what they are."""

    appid: str
    base_url: str
    secret_set: bool
    callback_token_set: bool
    message_mode: Literal["plain", "aes"]
    callback_path: str


class WeChatWalletCard(Struct, kw_only=True):
    object: Literal["wechat_wallet_card"] = "wechat_wallet_card"
    card: str
    wechat_card_id: str
    wallet_state: Literal["deposited", "in_wallet", "gifting", "deleted", "consumed", "unavailable"]
    openid: str | None
    outbox: dict[str, Any]

"""The merchants', stores' and terminals' requests and answers, each declared once (see core/shapes.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from giftcards.core.shapes import Timestamp

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

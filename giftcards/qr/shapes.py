"""The QR signing keys as the API shows them (see core/shapes.py)."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from giftcards.core.shapes import Timestamp


class QrKey(Struct, kw_only=True):
    kid: str
    object: Literal["qr_key"] = "qr_key"
    state: Literal["active", "verify_only", "retired"]
    created_at: Timestamp
    retired_at: Timestamp | None


class PublicKey(Struct):
    """An Ed25519 verifying key as a JWK."""

    kid: str
    kty: str
    crv: str
    x: str


class PublicKeySet(Struct):
    keys: list[PublicKey]

"""Merchants (the tenant boundary) and their back-office API keys.

A key reads `gk_<merchant id>_<secret>`: the merchant part routes the lookup to the merchant's rows (as a
distributed database would need), the 160-bit secret is what proves the caller. Only an HMAC of the
whole key is stored; the key itself is shown once, when it is made.
"""

from __future__ import annotations

import hmac
import re
import secrets
from dataclasses import dataclass

import asyncpg
import msgspec

from giftcards.core import ids
from giftcards.core.errors import DomainError, found
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring
from giftcards.stores.shapes import ApiKey, NewMerchant

API_KEY_PREFIX = "gk"
_MERCHANT_ID = re.compile(r"mer_[a-z2-7]{16}")  # the shape of ids.new_id("mer"), checked without decoding


@dataclass(frozen=True)
class Principal:
    """Who is calling: a merchant's API key, a store terminal, or the platform admin."""

    kind: str  # "api_key" | "terminal" | "admin"
    id: str
    merchant_id: str
    store_id: str | None = None
    role: str | None = None


def new_token(prefix: str, merchant_id: str) -> str:
    return f"{prefix}_{merchant_id}_{secrets.token_urlsafe(20)}"


def token_merchant(token: str, prefix: str) -> str | None:
    """The merchant id a well-formed token names, or None (callers answer 401 either way)."""
    parts = token.split("_")
    if len(parts) < 4 or parts[0] != prefix:
        return None
    merchant_id = f"{parts[1]}_{parts[2]}"
    return merchant_id if _MERCHANT_ID.fullmatch(merchant_id) else None


async def token_holder(
    conn: asyncpg.Connection, keyring: Keyring, token: str, prefix: str, query: str
) -> asyncpg.Record | None:
    """The row `query` finds for a bearer token ($1 the merchant it names, $2 its hash), or None for a
    malformed or unknown token: only the hash is stored, and the lookup stays within the named merchant."""
    merchant_id = token_merchant(token, prefix)
    if merchant_id is None:
        return None
    return await conn.fetchrow(query, merchant_id, keyring.token_hash(token))


async def create_merchant(conn: asyncpg.Connection, keyring: Keyring, *, name: str) -> NewMerchant:
    """A merchant and its first API key (returned once, in the result)."""
    merchant_id = ids.new_id("mer")
    async with conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO merchants (id, name) VALUES ($1, $2) RETURNING id, name, created_at",
            merchant_id,
            name,
        )
        key = await create_api_key(conn, keyring, merchant_id=merchant_id, label="first key")
    return NewMerchant(id=row["id"], name=row["name"], created_at=iso(row["created_at"]), api_key=key)


async def create_api_key(
    conn: asyncpg.Connection, keyring: Keyring, *, merchant_id: str, label: str
) -> ApiKey:
    token = new_token(API_KEY_PREFIX, merchant_id)
    row = await conn.fetchrow(
        """INSERT INTO api_keys (merchant_id, id, token_hash, token_last4, label)
           VALUES ($1, $2, $3, $4, $5) RETURNING *""",
        merchant_id,
        ids.new_id("key"),
        keyring.token_hash(token),
        token[-4:],
        label,
    )
    return msgspec.structs.replace(api_key_view(row), secret=token)


async def list_api_keys(conn: asyncpg.Connection, *, merchant_id: str) -> list[ApiKey]:
    rows = await conn.fetch(
        "SELECT * FROM api_keys WHERE merchant_id = $1 ORDER BY created_at, id", merchant_id
    )
    return [api_key_view(row) for row in rows]


async def revoke_api_key(conn: asyncpg.Connection, *, merchant_id: str, key_id: str) -> ApiKey:
    row = await conn.fetchrow(
        """UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
           WHERE merchant_id = $1 AND id = $2 RETURNING *""",
        merchant_id,
        key_id,
    )
    return api_key_view(found(row, "API key"))


UNKNOWN_KEY = "the API key is unknown or revoked"
_LIVE_KEY = """SELECT id, merchant_id FROM api_keys
                WHERE merchant_id = $1 AND token_hash = $2 AND revoked_at IS NULL"""


async def authenticate_api_key(conn: asyncpg.Connection, keyring: Keyring, token: str) -> Principal:
    row = await token_holder(conn, keyring, token, API_KEY_PREFIX, _LIVE_KEY)
    if row is None:
        raise DomainError("unauthenticated", UNKNOWN_KEY)
    return Principal("api_key", row["id"], row["merchant_id"])


def authenticate_admin(configured: str | None, token: str) -> Principal:
    if not configured or not hmac.compare_digest(configured.encode(), token.encode()):
        raise DomainError("unauthenticated", "the admin token is missing or wrong")
    return Principal("admin", "admin", "")


def api_key_view(row: asyncpg.Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        label=row["label"],
        last4=row["token_last4"],
        created_at=iso(row["created_at"]),
        revoked_at=iso(row["revoked_at"]),
    )

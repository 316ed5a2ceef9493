"""A merchant's WeChat official account: appid, AppSecret, callback Token, EncodingAESKey, API base URL.

The three secrets are sealed with the keyring (each bound to the merchant and its purpose) and are
write-only: the view says whether each is set, never what it is. Changing the appid or the AppSecret
drops the cached access_token and api_ticket, which belong to the old credentials.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from giftcards.core.errors import DomainError, ValidationError
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring

DEFAULT_BASE_URL = "https://api.weixin.qq.com/"


@dataclass(frozen=True)
class Account:
    merchant_id: str
    appid: str
    base_url: str
    secret: str = field(repr=False)
    callback_token: str = field(repr=False)
    updated_at: datetime  # the settings' version: a credential fetched with them is kept only for it
    encoding_aes_key: str | None = field(default=None, repr=False)

    @property
    def aes_mode(self) -> bool:
        return self.encoding_aes_key is not None


def _context(merchant_id: str, purpose: str) -> bytes:
    return f"wechat-{purpose}:{merchant_id}".encode()


def seal(keyring: Keyring, merchant_id: str, purpose: str, value: str) -> bytes:
    return keyring.box.seal(value.encode(), context=_context(merchant_id, purpose))


def unseal(keyring: Keyring, merchant_id: str, purpose: str, sealed: bytes) -> str:
    return keyring.box.open(bytes(sealed), context=_context(merchant_id, purpose)).decode()


def normalize_base_url(raw: str) -> str:
    """https anywhere; plain http only to this machine (a stand-in), so secrets never cross a network bare."""
    parts = urlsplit(raw)
    problem = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problem = "must be an http(s) URL"
    elif parts.query or parts.fragment or parts.username or parts.password:
        problem = "must not carry a query, a fragment or credentials"
    elif parts.scheme == "http" and not _is_loopback(parts.hostname):
        problem = "plain http is allowed only for a stand-in on this machine; use https"
    if problem:
        raise ValidationError([{"field": "base_url", "message": problem}])
    return raw.rstrip("/") + "/"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def put_account(
    conn: asyncpg.Connection,
    keyring: Keyring,
    merchant_id: str,
    *,
    appid: str,
    secret: str | None = None,
    callback_token: str | None = None,
    encoding_aes_key: str | None = None,
    base_url: str | None = None,
    plain_mode: bool = False,
) -> dict[str, Any]:
    """Create or update the settings; a secret left out keeps its stored value (`plain_mode` drops the
    EncodingAESKey)."""
    url = normalize_base_url(base_url) if base_url is not None else None
    async with conn.transaction():
        current = await conn.fetchrow(
            "SELECT * FROM wechat_accounts WHERE merchant_id = $1 FOR UPDATE", merchant_id
        )
        if current is None:
            missing = [
                {"field": name, "message": "required when WeChat is first set up"}
                for name, value in (("secret", secret), ("callback_token", callback_token))
                if value is None
            ]
            if missing:
                raise ValidationError(missing)
            assert secret is not None and callback_token is not None
            aes = seal(keyring, merchant_id, "aes-key", encoding_aes_key) if encoding_aes_key else None
            row = await conn.fetchrow(
                """INSERT INTO wechat_accounts (merchant_id, appid, secret_sealed, callback_token_sealed,
                                                aes_key_sealed, base_url)
                   VALUES ($1, $2, $3, $4, $5, $6) RETURNING *""",
                merchant_id,
                appid,
                seal(keyring, merchant_id, "secret", secret),
                seal(keyring, merchant_id, "callback-token", callback_token),
                aes,
                url or DEFAULT_BASE_URL,
            )
        else:
            aes_sealed = current["aes_key_sealed"]
            if plain_mode:
                aes_sealed = None
            elif encoding_aes_key is not None:
                aes_sealed = seal(keyring, merchant_id, "aes-key", encoding_aes_key)
            row = await conn.fetchrow(
                """UPDATE wechat_accounts
                      SET appid = $2, secret_sealed = coalesce($3, secret_sealed),
                          callback_token_sealed = coalesce($4, callback_token_sealed),
                          aes_key_sealed = $5, base_url = coalesce($6, base_url), updated_at = now()
                    WHERE merchant_id = $1 RETURNING *""",
                merchant_id,
                appid,
                seal(keyring, merchant_id, "secret", secret) if secret is not None else None,
                seal(keyring, merchant_id, "callback-token", callback_token)
                if callback_token is not None
                else None,
                aes_sealed,
                url,
            )
            if appid != current["appid"] or secret is not None or url not in (None, current["base_url"]):
                await conn.execute("DELETE FROM wechat_credentials WHERE merchant_id = $1", merchant_id)
    return account_view(row)


async def get_view(conn: asyncpg.Connection, merchant_id: str) -> dict[str, Any]:
    row = await conn.fetchrow("SELECT * FROM wechat_accounts WHERE merchant_id = $1", merchant_id)
    if row is None:
        raise DomainError("wechat_not_configured", "WeChat is not set up for this merchant")
    return account_view(row)


async def load(conn: asyncpg.Connection, keyring: Keyring, merchant_id: str) -> Account:
    account = await find(conn, keyring, merchant_id)
    if account is None:
        raise DomainError("wechat_not_configured", "WeChat is not set up for this merchant")
    return account


async def find(conn: asyncpg.Connection, keyring: Keyring, merchant_id: str) -> Account | None:
    row = await conn.fetchrow("SELECT * FROM wechat_accounts WHERE merchant_id = $1", merchant_id)
    if row is None:
        return None
    aes = row["aes_key_sealed"]
    return Account(
        merchant_id=merchant_id,
        appid=row["appid"],
        base_url=row["base_url"],
        secret=unseal(keyring, merchant_id, "secret", row["secret_sealed"]),
        callback_token=unseal(keyring, merchant_id, "callback-token", row["callback_token_sealed"]),
        encoding_aes_key=unseal(keyring, merchant_id, "aes-key", aes) if aes is not None else None,
        updated_at=row["updated_at"],
    )


def account_view(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "object": "wechat_account",
        "appid": row["appid"],
        "base_url": row["base_url"],
        "secret_set": True,
        "callback_token_set": True,
        "message_mode": "aes" if row["aes_key_sealed"] is not None else "plain",
        "callback_path": f"/wechat/callback/{row['merchant_id']}",
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }

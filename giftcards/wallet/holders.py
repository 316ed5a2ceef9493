"""The wallet: a person's cards of one merchant in one place — the cards they hold, the gifts waiting for
them, the gifts they sent — opened by a short-lived session that the merchant's backend asks for.

A session is a 192-bit secret (`gw_…`) stored only as a keyed hash, in a row that binds it to one
merchant and one owner id and ends at `expires_at`, or sooner when it or the API key that made it is
revoked. The link names neither merchant nor owner, so editing it can only make it unknown; an unknown,
revoked or expired secret gets one and the same refusal. Card-page links opened from a session are made on
its key's authority and end with that key too (see card_access).

Cards come in two groups, each read with an index range scan and a keyset cursor (never OFFSET):
  * with value — balance above zero, not expired, active (or blocked or pending): soonest expiry first,
    then the cards without expiry (index cards_wallet_with_value);
  * the rest — used up, expired, deactivated: newest first (index cards_wallet_by_owner).
The filters are `active` (the first group), `used_up` and `expired` (parts of the second). The totals
count what can be spent now: active cards with value, per currency.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

import asyncpg
import msgspec

from giftcards.core import ids
from giftcards.core.errors import DomainError, ValidationError
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring
from giftcards.core.secret_links import WALLET
from giftcards.core.shapes import PAGE_LIMIT_DEFAULT
from giftcards.gifting import card_access, designs
from giftcards.gifting.card_art import CardArt
from giftcards.gifting.lookups import fetch_by_id
from giftcards.gifting.row_views import view_of
from giftcards.stores.merchants import Principal
from giftcards.wallet.shapes import (
    SESSION_MINUTES_DEFAULT,
    SESSION_MINUTES_MAX,
    SESSION_MINUTES_MIN,
    CardFilter,
    WalletSession,
)

TOKEN_PREFIX = WALLET.prefix.removesuffix("_")  # a session's secret is also its Bearer token, gw_…
FILTERS = get_args(CardFilter)
_HOLDING = ("active", "pending", "blocked")  # states in which a card may still be (or become) spendable
INFINITY = datetime.max.replace(tzinfo=UTC)  # asyncpg sends these two as ±infinity
MINUS_INFINITY = datetime.min.replace(tzinfo=UTC)
_CURSOR_ID = re.compile(r"^card_[a-z2-7]{16}$")


@dataclass(frozen=True)
class Holder(Principal):
    """Who a wallet session admits: `owner_id`'s cards of `merchant_id`, until `expires_at`. `id` is the
    session's id (so an Idempotency-Key is scoped to the session); `api_key_id` is the key that made it,
    on whose authority the session hands out card-page links."""

    owner_id: str = ""
    api_key_id: str = ""
    display_name: str | None = None
    merchant_name: str = ""
    expires_at: datetime | None = None


# -- sessions ------------------------------------------------------------------------------------------


async def create_session(
    conn: asyncpg.Connection,
    keyring: Keyring,
    principal: Principal,
    *,
    owner_id: str,
    minutes: int = SESSION_MINUTES_DEFAULT,
    display_name: str | None = None,
    public_url: str,
) -> WalletSession:
    """A link to `owner_id`'s wallet for `minutes`; the secret is in the answer once, and only its keyed
    hash is kept."""
    if not SESSION_MINUTES_MIN <= minutes <= SESSION_MINUTES_MAX:
        raise ValidationError(
            [
                {
                    "field": "expires_in_minutes",
                    "message": f"must be {SESSION_MINUTES_MIN} to {SESSION_MINUTES_MAX}",
                }
            ]
        )
    token, token_hash = WALLET.new(keyring)
    row = await conn.fetchrow(
        """INSERT INTO wallet_sessions (merchant_id, id, token_hash, api_key_id, owner_id, display_name,
                                        expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(mins => $7))
           RETURNING *, now() AS now""",
        principal.merchant_id,
        ids.new_id("wls"),
        token_hash,
        principal.id,
        owner_id,
        display_name,
        minutes,
    )
    return msgspec.structs.replace(session_view(row), url=WALLET.url(public_url, token), token=token)


_REVOKE = """UPDATE wallet_sessions SET revoked_at = coalesce(revoked_at, now())
             WHERE merchant_id = $1 AND id = $2 RETURNING *, now() AS now"""


async def revoke_session(conn: asyncpg.Connection, merchant_id: str, session_id: str) -> WalletSession:
    """End a session before its time (e.g. when the person logs out of the shop)."""
    row = await fetch_by_id(conn, _REVOKE, merchant_id, session_id, "wls")
    if row is None:
        raise DomainError("not_found", "no such wallet session")
    return session_view(row)


async def purge_expired_sessions(conn: asyncpg.Connection) -> int:
    """Sessions a day past their expiry are of no use to anyone (a periodic duty)."""
    result = await conn.execute("DELETE FROM wallet_sessions WHERE expires_at < now() - interval '1 day'")
    return int(result.split()[-1])


async def resolve(conn: asyncpg.Connection, keyring: Keyring, token: str) -> Holder:
    """Who the secret admits, or one refusal for unknown, revoked and expired secrets alike, and for the
    sessions of a revoked API key (checked in the same statement, so at once in every process)."""
    row = None
    if WALLET.well_formed(token):
        row = await conn.fetchrow(
            """SELECT s.id, s.merchant_id, s.owner_id, s.display_name, s.expires_at, s.api_key_id,
                      m.name AS merchant_name
               FROM wallet_sessions s JOIN merchants m ON m.id = s.merchant_id
               JOIN api_keys k ON k.merchant_id = s.merchant_id AND k.id = s.api_key_id
               WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
                 AND k.revoked_at IS NULL""",
            WALLET.hash(keyring, token),
        )
    if row is None:
        raise DomainError(
            "unauthenticated",
            "this wallet link is not valid or has expired; open the wallet again from the shop",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Holder(
        "wallet",
        row["id"],
        row["merchant_id"],
        owner_id=row["owner_id"],
        api_key_id=row["api_key_id"],
        display_name=row["display_name"],
        merchant_name=row["merchant_name"],
        expires_at=row["expires_at"],
    )


def session_view(row: Mapping[str, Any]) -> WalletSession:
    state = "revoked" if row["revoked_at"] else "expired" if row["now"] >= row["expires_at"] else "active"
    return view_of(WalletSession, row, state=state)


# -- the overview ------------------------------------------------------------------------------------


async def overview(conn: asyncpg.Connection, holder: Holder) -> dict[str, Any]:
    """Counts per group, what can be spent now per currency, how many gifts wait, and whether the
    merchant has the WeChat card wallet."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot, one now()
        counts = await conn.fetchrow(
            """SELECT
                 count(*) FILTER (WHERE balance > 0 AND state IN ('active', 'pending', 'blocked')
                                  AND coalesce(expires_at, 'infinity'::timestamptz) > now()) AS active,
                 count(*) FILTER (WHERE balance = 0 AND state IN ('active', 'pending', 'blocked')
                                  AND coalesce(expires_at, 'infinity'::timestamptz) > now()) AS used_up,
                 count(*) FILTER (WHERE state = 'expired' OR (state IN ('active', 'pending', 'blocked')
                                                              AND expires_at <= now())) AS expired,
                 count(*) FILTER (WHERE state = 'deactivated') AS deactivated
               FROM cards WHERE merchant_id = $1 AND owner_id = $2""",
            holder.merchant_id,
            holder.owner_id,
        )
        totals = await conn.fetch(
            """SELECT currency, sum(balance)::bigint AS balance, count(*) AS cards FROM cards
               WHERE merchant_id = $1 AND owner_id = $2 AND balance > 0 AND state = 'active'
                 AND coalesce(expires_at, 'infinity'::timestamptz) > now()
               GROUP BY currency ORDER BY currency""",
            holder.merchant_id,
            holder.owner_id,
        )
        waiting = await conn.fetchval(
            """SELECT count(*) FROM gifts
               WHERE merchant_id = $1 AND recipient_owner_id = $2 AND state = 'waiting'
                 AND expires_at > now()""",
            holder.merchant_id,
            holder.owner_id,
        )
        wechat = await card_access.wechat_ready(conn, holder.merchant_id)
    return {
        "object": "wallet",
        "merchant": {"name": holder.merchant_name},
        "display_name": holder.display_name,
        "session_expires_at": iso(holder.expires_at),
        "counts": {**{name: counts[name] for name in (*FILTERS, "deactivated")}, "gifts_waiting": waiting},
        "totals": [
            {
                "currency": row["currency"],
                "balance": row["balance"],
                "balance_text": designs.format_money(row["balance"], row["currency"]),
                "cards": row["cards"],
            }
            for row in totals
        ],
        "wechat": wechat,
    }


# -- cards -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Position:
    """Where a page ended: the group ('value' or 'rest'), the sort key in it and the card id."""

    group: str
    key: datetime
    card_id: str


def encode_cursor(position: Position) -> str:
    key = "inf" if position.key == INFINITY else position.key.astimezone(UTC).isoformat()
    raw = json.dumps([position.group, key, position.card_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        group, key, card_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = INFINITY if key == "inf" and group == "value" else datetime.fromisoformat(key)
        if group not in ("value", "rest") or when.tzinfo is None or not _CURSOR_ID.match(card_id):
            raise ValueError(group)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationError([{"field": "cursor", "message": "is not a cursor this list gave"}]) from None
    return Position(group, when, card_id)


def card_status(state: str, balance: int, expires_at: datetime | None, now: datetime) -> str:
    """The card's group in the wallet: active (has value and may still be used), used_up, expired or
    deactivated. The same rules as the SQL of this module."""
    if state == "expired" or (state in _HOLDING and expires_at is not None and expires_at <= now):
        return "expired"
    if state == "deactivated":
        return "deactivated"
    return "active" if balance > 0 else "used_up"


async def list_cards(
    conn: asyncpg.Connection,
    holder: Holder,
    *,
    status: str | None = None,
    limit: int = PAGE_LIMIT_DEFAULT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One page of the owner's cards: the group with value first, then the rest; `next_cursor` goes on."""
    groups = ["value"] if status == "active" else ["rest"] if status else ["value", "rest"]
    position = decode_cursor(cursor) if cursor else None
    if position is not None and position.group not in groups:
        raise ValidationError([{"field": "cursor", "message": "belongs to another filter"}])
    found: list[tuple[str, asyncpg.Record]] = []
    async with conn.transaction(isolation="repeatable_read", readonly=True):  # one snapshot, one now()
        for group in groups[groups.index(position.group) if position else 0 :]:
            after = position if position is not None and position.group == group else None
            rows = await _page(conn, holder, group, status, after, limit + 1 - len(found))
            found += [(group, row) for row in rows]
            if len(found) > limit:
                break
        shown = found[:limit]
        details = await _details(conn, holder.merchant_id, [row["id"] for _, row in shown])
    next_cursor = None
    if len(found) > limit:
        group, row = shown[-1]
        next_cursor = encode_cursor(Position(group, _sort_key(group, row), row["id"]))
    return {
        "object": "list",
        "data": [card_item(row, details[row["id"]]) for _, row in shown],
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }


def _sort_key(group: str, row: asyncpg.Record) -> datetime:
    if group == "value":
        return row["expires_at"] or INFINITY
    return row["created_at"]


# A range scan of cards_wallet_with_value, in its order.
VALUE_PAGE = """SELECT *, now() AS now FROM cards
    WHERE merchant_id = $1 AND owner_id = $2
      AND balance > 0 AND state IN ('active', 'pending', 'blocked')
      AND coalesce(expires_at, 'infinity'::timestamptz) > now()
      AND (coalesce(expires_at, 'infinity'::timestamptz), id) > ($3::timestamptz, $4::text)
    ORDER BY coalesce(expires_at, 'infinity'::timestamptz), id
    LIMIT $5"""
# A backward range scan of cards_wallet_by_owner that skips the cards with value; $3 picks a status.
REST_PAGE = """SELECT *, now() AS now FROM cards
    WHERE merchant_id = $1 AND owner_id = $2
      AND NOT (balance > 0 AND state IN ('active', 'pending', 'blocked')
               AND coalesce(expires_at, 'infinity'::timestamptz) > now())
      AND ($3::text IS NULL OR $3 = CASE
            WHEN state = 'expired'
                 OR (state IN ('active', 'pending', 'blocked') AND expires_at <= now()) THEN 'expired'
            WHEN state = 'deactivated' THEN 'deactivated'
            ELSE 'used_up' END)
      AND (created_at, id) < ($4::timestamptz, $5::text)
    ORDER BY created_at DESC, id DESC
    LIMIT $6"""


async def _page(
    conn: asyncpg.Connection,
    holder: Holder,
    group: str,
    status: str | None,
    after: Position | None,
    limit: int,
) -> list[asyncpg.Record]:
    if group == "value":
        start: tuple[datetime, str] = (after.key, after.card_id) if after else (MINUS_INFINITY, "")
        return await conn.fetch(VALUE_PAGE, holder.merchant_id, holder.owner_id, *start, limit)
    start = (after.key, after.card_id) if after else (INFINITY, "")
    return await conn.fetch(REST_PAGE, holder.merchant_id, holder.owner_id, status, *start, limit)


async def _details(
    conn: asyncpg.Connection, merchant_id: str, card_ids: list[str]
) -> dict[str, asyncpg.Record]:
    """For the cards of a page: their design, who gave each (the gift it was claimed from), and whether
    anything was spent from it (then it cannot be passed on)."""
    rows = await conn.fetch(
        """SELECT c.id, d.id AS design_id, d.name AS design_name, d.occasion,
                  (SELECT g.sender_name FROM gifts g
                   WHERE g.merchant_id = c.merchant_id AND g.card_id = c.id AND g.state = 'claimed'
                     AND g.recipient_id = c.owner_id
                   ORDER BY g.claimed_at DESC LIMIT 1) AS from_name,
                  EXISTS (SELECT 1 FROM ledger_entries l
                          WHERE l.merchant_id = c.merchant_id AND l.card_id = c.id
                            AND l.kind = 'redeem') AS spent_from
           FROM cards c LEFT JOIN designs d ON d.merchant_id = c.merchant_id AND d.id = c.design_id
           WHERE c.merchant_id = $1 AND c.id = ANY($2::text[])""",
        merchant_id,
        card_ids,
    )
    return {row["id"]: row for row in rows}


def card_item(row: Mapping[str, Any], details: Mapping[str, Any]) -> dict[str, Any]:
    status = card_status(row["state"], row["balance"], row["expires_at"], row["now"])
    state = "expired" if status == "expired" else row["state"]
    payable = status == "active" and state == "active"
    return {
        "id": row["id"],
        "object": "wallet_card",
        "status": status,
        "state": state,
        "balance": row["balance"],
        "initial_amount": row["initial_amount"],
        "currency": row["currency"],
        "balance_text": designs.format_money(row["balance"], row["currency"]),
        "expires_at": iso(row["expires_at"]),
        "code_last4": row["code_last4"],
        "design": None
        if details["design_id"] is None
        else {"id": details["design_id"], "name": details["design_name"], "occasion": details["occasion"]},
        "from_name": details["from_name"],
        "can_pay": payable,
        "can_send": payable and not details["spent_from"],
        "created_at": iso(row["created_at"]),
    }


# -- what the owner does with a card -------------------------------------------------------------------


async def open_card(
    conn: asyncpg.Connection, keyring: Keyring, holder: Holder, card_id: str, *, public_url: str
) -> dict[str, Any]:
    """A card-page link (QR for the till, code, history) for a card the owner holds, and the page that
    adds it to the WeChat card wallet where the merchant has WeChat."""
    try:
        token = await card_access.grant_to_owner(
            conn, keyring, holder.merchant_id, card_id, holder.owner_id, api_key_id=holder.api_key_id
        )
    except DomainError as exc:
        raise not_theirs(exc) from None
    url = card_access.card_url(public_url, token)
    wechat = await card_access.wechat_ready(conn, holder.merchant_id)
    return {
        "object": "card_access_link",
        "card": card_id,
        "url": url,
        "wechat_url": url + "/wechat" if wechat else None,
    }


async def card_picture(conn: asyncpg.Connection, holder: Holder, card_id: str) -> CardArt:
    """The picture of a card the owner holds (the gift it came as, else its design)."""
    held = ids.is_id(card_id, "card") and await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM cards WHERE merchant_id = $1 AND id = $2 AND owner_id = $3)",
        holder.merchant_id,
        card_id,
        holder.owner_id,
    )
    if not held:
        raise DomainError("card_not_found", "no such card")
    access = card_access.Access(holder.id, holder.merchant_id, card_id, holder.owner_id)
    return await card_access.art(conn, access)


def not_theirs(exc: DomainError) -> DomainError:
    """Inside a wallet, another owner's card is no different from a card that does not exist."""
    return DomainError("card_not_found", "no such card") if exc.code == "not_card_owner" else exc

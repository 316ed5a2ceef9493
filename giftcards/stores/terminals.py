"""Stores, their redemption terminals, enrollment, terminal tokens and what each role may do.

A terminal is made by the back office, which gets a one-time enrollment code (10 symbols a person can
type, valid 15 minutes). The device exchanges the code, exactly once, for a token `gt_<merchant>_<secret>`
that is shown only then and stored as an HMAC. Every call looks the token up again (no cache), so a
revoked or rotated token fails at once. An unused code dies with the API key that asked for it (a
revoked key has usually leaked; a till it could still enrol would look up and redeem cards).

Roles: a `clerk` looks up, redeems up to the store's per-transaction limit and refunds its own store's
redemptions of the same day (the store's day, in its time zone); a `manager` may also redeem above the
limit, refund its store's older redemptions and block a card. API keys are not subject to roles.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, get_args

import asyncpg
import msgspec

from giftcards.core import ids
from giftcards.core.errors import DomainError, ValidationError, found
from giftcards.core.isotime import iso
from giftcards.core.sealing import Keyring
from giftcards.core.shapes import Page
from giftcards.stores import staff_log
from giftcards.stores.merchants import Principal, new_token, token_holder
from giftcards.stores.shapes import Enrollment, Role, Store, Terminal, TerminalRedemption
from giftcards.value import codes, ledger

TOKEN_PREFIX = "gt"  # noqa: S105 (a prefix, not a secret)
ROLES = get_args(Role)
ENROLLMENT_TTL = timedelta(minutes=15)
ENROLLMENT_LENGTH = 10  # 50 bits: a guess per attempt is hopeless, and attempts are rate-limited
TODAY_MAX = 200

# -- stores ----------------------------------------------------------------------------------------------


async def create_store(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    name: str,
    redeem_limit: int | None = None,
    timezone: str = "Asia/Shanghai",
) -> Store:
    await _check_timezone(conn, timezone)
    row = await conn.fetchrow(
        """INSERT INTO stores (merchant_id, id, name, redeem_limit, timezone) VALUES ($1, $2, $3, $4, $5)
           RETURNING *""",
        merchant_id,
        ids.new_id("store"),
        name,
        redeem_limit,
        timezone,
    )
    return store_view(row)


async def update_store(
    conn: asyncpg.Connection, merchant_id: str, store_id: str, changes: dict[str, Any]
) -> Store:
    """Change name, redeem_limit (None removes it) or timezone; fields not given stay as they are."""
    _check_id(store_id, "store")
    if "timezone" in changes:
        await _check_timezone(conn, changes["timezone"])
    row = await conn.fetchrow(
        """UPDATE stores SET name = CASE WHEN $3 THEN $4 ELSE name END,
                             redeem_limit = CASE WHEN $5 THEN $6 ELSE redeem_limit END,
                             timezone = CASE WHEN $7 THEN $8 ELSE timezone END,
                             updated_at = now()
           WHERE merchant_id = $1 AND id = $2 RETURNING *""",
        merchant_id,
        store_id,
        "name" in changes,
        changes.get("name"),
        "redeem_limit" in changes,
        changes.get("redeem_limit"),
        "timezone" in changes,
        changes.get("timezone"),
    )
    return store_view(found(row, "store"))


async def get_store(conn: asyncpg.Connection, merchant_id: str, store_id: str) -> Store:
    _check_id(store_id, "store")
    row = await conn.fetchrow(
        "SELECT * FROM stores WHERE merchant_id = $1 AND id = $2", merchant_id, store_id
    )
    return store_view(found(row, "store"))


async def list_stores(conn: asyncpg.Connection, merchant_id: str) -> list[Store]:
    rows = await conn.fetch(
        "SELECT * FROM stores WHERE merchant_id = $1 ORDER BY created_at, id", merchant_id
    )
    return [store_view(row) for row in rows]


def _check_id(value: str, prefix: str) -> None:
    """An id of the wrong shape names nothing (and never reaches a query)."""
    if not ids.is_id(value, prefix):
        raise DomainError("not_found", f"no such {'terminal' if prefix == 'term' else prefix}")


async def _check_timezone(conn: asyncpg.Connection, timezone: str) -> None:
    known = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)", timezone)
    if not known:
        raise ValidationError(
            [{"field": "timezone", "message": "must be an IANA time zone, e.g. Asia/Shanghai"}]
        )


# -- terminals ---------------------------------------------------------------------------------------------


async def create_terminal(
    conn: asyncpg.Connection,
    keyring: Keyring,
    merchant_id: str,
    *,
    store_id: str,
    label: str,
    role: str,
    api_key_id: str,
) -> Terminal:
    """A terminal not yet enrolled, and the one-time code (in the answer only) that enrols it."""
    async with conn.transaction():
        await get_store(conn, merchant_id, store_id)
        row = await conn.fetchrow(
            """INSERT INTO terminals (merchant_id, id, store_id, label, role) VALUES ($1, $2, $3, $4, $5)
               RETURNING *""",
            merchant_id,
            ids.new_id("term"),
            store_id,
            label,
            role,
        )
        enrollment = await _new_enrollment(conn, keyring, merchant_id, row["id"], api_key_id)
    return msgspec.structs.replace(terminal_view(row), enrollment=enrollment)


async def list_terminals(
    conn: asyncpg.Connection, merchant_id: str, *, store_id: str | None = None
) -> list[Terminal]:
    rows = await conn.fetch(
        """SELECT * FROM terminals WHERE merchant_id = $1 AND ($2::text IS NULL OR store_id = $2)
           ORDER BY created_at, id""",
        merchant_id,
        store_id,
    )
    return [terminal_view(row) for row in rows]


async def get_terminal(conn: asyncpg.Connection, merchant_id: str, terminal_id: str) -> Terminal:
    return terminal_view(await _fetch_terminal(conn, merchant_id, terminal_id))


async def update_terminal(
    conn: asyncpg.Connection, merchant_id: str, terminal_id: str, *, label: str | None, role: str | None
) -> Terminal:
    """A new role takes effect on the terminal's next call (the token is looked up every time)."""
    _check_id(terminal_id, "term")
    row = await conn.fetchrow(
        """UPDATE terminals SET label = coalesce($3, label), role = coalesce($4, role), updated_at = now()
           WHERE merchant_id = $1 AND id = $2 RETURNING *""",
        merchant_id,
        terminal_id,
        label,
        role,
    )
    return terminal_view(found(row, "terminal"))


async def revoke_terminal(conn: asyncpg.Connection, merchant_id: str, terminal_id: str) -> Terminal:
    """For good: the token fails from the next call on, and unused enrollment codes die with it."""
    _check_id(terminal_id, "term")
    async with conn.transaction():
        row = found(
            await conn.fetchrow(
                """UPDATE terminals SET revoked_at = coalesce(revoked_at, now()), updated_at = now()
                   WHERE merchant_id = $1 AND id = $2 RETURNING *""",
                merchant_id,
                terminal_id,
            ),
            "terminal",
        )
        await _drop_unused_enrollments(conn, merchant_id, terminal_id)
    return terminal_view(row)


async def rotate_terminal(
    conn: asyncpg.Connection, keyring: Keyring, merchant_id: str, terminal_id: str, *, api_key_id: str
) -> Terminal:
    """The current token dies at once; the answer carries a new enrollment code for the device."""
    _check_id(terminal_id, "term")
    async with conn.transaction():
        row = await conn.fetchrow(
            """UPDATE terminals
               SET token_hash = NULL, token_last4 = NULL, enrolled_at = NULL, updated_at = now()
               WHERE merchant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING *""",
            merchant_id,
            terminal_id,
        )
        if row is None:
            await _fetch_terminal(conn, merchant_id, terminal_id)
            raise DomainError("terminal_revoked", "a revoked terminal cannot be enrolled again")
        await _drop_unused_enrollments(conn, merchant_id, terminal_id)
        enrollment = await _new_enrollment(conn, keyring, merchant_id, terminal_id, api_key_id)
    return msgspec.structs.replace(terminal_view(row), enrollment=enrollment)


async def _fetch_terminal(conn: asyncpg.Connection, merchant_id: str, terminal_id: str) -> asyncpg.Record:
    _check_id(terminal_id, "term")
    row = await conn.fetchrow(
        "SELECT * FROM terminals WHERE merchant_id = $1 AND id = $2", merchant_id, terminal_id
    )
    return found(row, "terminal")


# -- enrollment and tokens ---------------------------------------------------------------------------


def _enrollment_hash(keyring: Keyring, code: str) -> bytes:
    return keyring.token_hash("enroll:" + code)


def normalize_enrollment_code(raw: str) -> str | None:
    code = raw.upper().replace(" ", "").replace("-", "")
    if len(code) != ENROLLMENT_LENGTH or not set(code) <= set(codes.ALPHABET):
        return None
    return code


async def _new_enrollment(
    conn: asyncpg.Connection, keyring: Keyring, merchant_id: str, terminal_id: str, api_key_id: str
) -> Enrollment:
    code = "".join(secrets.choice(codes.ALPHABET) for _ in range(ENROLLMENT_LENGTH))
    expires_at = await conn.fetchval(
        """INSERT INTO terminal_enrollments (merchant_id, terminal_id, code_hash, expires_at, api_key_id)
           VALUES ($1, $2, $3, now() + $4::interval, $5) RETURNING expires_at""",
        merchant_id,
        terminal_id,
        _enrollment_hash(keyring, code),
        ENROLLMENT_TTL,
        api_key_id,
    )
    half = ENROLLMENT_LENGTH // 2
    return Enrollment(f"{code[:half]}-{code[half:]}", iso(expires_at))


async def _drop_unused_enrollments(conn: asyncpg.Connection, merchant_id: str, terminal_id: str) -> None:
    await conn.execute(
        "DELETE FROM terminal_enrollments WHERE merchant_id = $1 AND terminal_id = $2 AND used_at IS NULL",
        merchant_id,
        terminal_id,
    )


async def enroll(
    conn: asyncpg.Connection, keyring: Keyring, raw_code: str, *, client: str | None
) -> Terminal:
    """Exchange an enrollment code for the terminal's token, atomically and once. A wrong, used, expired
    or malformed code, or one of a since-revoked terminal or API key, all get the same answer."""
    code = normalize_enrollment_code(raw_code)
    if code is None:
        raise DomainError("invalid_enrollment_code", "the code is wrong, used or expired")
    async with conn.transaction():
        used = await conn.fetchrow(
            """UPDATE terminal_enrollments e SET used_at = now()
               WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()
                 AND NOT EXISTS (SELECT 1 FROM api_keys k
                                 WHERE k.merchant_id = e.merchant_id AND k.id = e.api_key_id
                                   AND k.revoked_at IS NOT NULL)
               RETURNING merchant_id, terminal_id""",
            _enrollment_hash(keyring, code),
        )
        if used is None:
            raise DomainError("invalid_enrollment_code", "the code is wrong, used or expired")
        token = new_token(TOKEN_PREFIX, used["merchant_id"])
        row = await conn.fetchrow(
            """UPDATE terminals SET token_hash = $3, token_last4 = $4, enrolled_at = now(), updated_at = now()
               WHERE merchant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING *""",
            used["merchant_id"],
            used["terminal_id"],
            keyring.token_hash(token),
            token[-4:],
        )
        if row is None:  # revoked meanwhile (revoking drops unused codes, so only in a race)
            raise DomainError("invalid_enrollment_code", "the code is wrong, used or expired")
        await staff_log.record(conn, _principal(row), staff_log.Entry("enroll"), client=client)
    return msgspec.structs.replace(terminal_view(row), token=token)


UNKNOWN_TOKEN = "the terminal token is unknown, rotated or revoked"  # noqa: S105 (a message)
_TERMINAL_BY_HASH = "SELECT * FROM terminals WHERE merchant_id = $1 AND token_hash = $2"


async def authenticate(conn: asyncpg.Connection, keyring: Keyring, token: str) -> Principal:
    """The terminal a token belongs to, read fresh on every call. A revoked terminal's attempt is logged."""
    row = await token_holder(conn, keyring, token, TOKEN_PREFIX, _TERMINAL_BY_HASH)
    if row is None:
        raise DomainError("unauthenticated", UNKNOWN_TOKEN)
    principal = _principal(row)
    if row["revoked_at"] is not None:
        await staff_log.record(
            conn, principal, staff_log.Entry("authenticate", outcome="unauthenticated"), client=None
        )
        raise DomainError("unauthenticated", UNKNOWN_TOKEN)
    return principal


def _principal(row: asyncpg.Record) -> Principal:
    return Principal("terminal", row["id"], row["merchant_id"], store_id=row["store_id"], role=row["role"])


async def flag(conn: asyncpg.Connection, principal: Principal) -> None:
    await conn.execute(
        "UPDATE terminals SET flagged_at = now() WHERE merchant_id = $1 AND id = $2",
        principal.merchant_id,
        principal.id,
    )


# -- what a role may do ---------------------------------------------------------------------------------


async def authorize_refund(
    conn: asyncpg.Connection, principal: Principal, redemption_id: str, entry: staff_log.Entry
) -> None:
    """Own store only; a clerk only the store's redemptions of today. Fills the log entry's card."""
    row = await conn.fetchrow(
        """SELECT e.kind, e.card_id, e.store_id, e.currency,
                  (e.created_at AT TIME ZONE s.timezone)::date
                      = (now() AT TIME ZONE s.timezone)::date AS today
           FROM ledger_entries e JOIN stores s ON s.merchant_id = e.merchant_id AND s.id = $3
           WHERE e.merchant_id = $1 AND e.id = $2""",
        principal.merchant_id,
        ledger.parse_activity_id(redemption_id),
        principal.store_id,
    )
    if row is None:
        raise DomainError("activity_not_found", "no such activity")
    entry.card_id, entry.currency = row["card_id"], row["currency"]
    if row["kind"] != "redeem":
        return  # the refund itself answers not_a_redemption
    if row["store_id"] != principal.store_id:
        raise DomainError("refund_not_allowed", "the redemption was made at another store")
    if principal.role != "manager" and not row["today"]:
        raise DomainError(
            "manager_required", "only a manager terminal may refund an earlier day's redemption"
        )


def authorize_block(principal: Principal) -> None:
    if principal.role != "manager":
        raise DomainError("manager_required", "only a manager terminal may block a card")


def may_refund(principal: Principal, *, store_id: str | None, today: bool) -> bool:
    return store_id == principal.store_id and (today or principal.role == "manager")


# -- the terminal's own view ----------------------------------------------------------------------------


async def whoami(conn: asyncpg.Connection, principal: Principal) -> Terminal:
    terminal = await get_terminal(conn, principal.merchant_id, principal.id)
    store = await get_store(conn, principal.merchant_id, str(terminal.store))
    return msgspec.structs.replace(terminal, store=store)


async def todays_redemptions(conn: asyncpg.Connection, principal: Principal) -> Page[TerminalRedemption]:
    """This terminal's redemptions since the start of the store's day, newest first, with what is left
    to refund and whether this terminal may refund it."""
    rows = await conn.fetch(
        """SELECT e.id, e.card_id, e.amount, e.currency, e.reference, e.created_at, e.store_id,
                  c.code_last4,
                  -e.amount - (SELECT coalesce(sum(r.amount), 0) FROM ledger_entries r
                               WHERE r.merchant_id = e.merchant_id AND r.refund_of = e.id)::bigint
                      AS refundable
           FROM stores s
           JOIN ledger_entries e ON e.merchant_id = s.merchant_id
           JOIN cards c ON c.merchant_id = e.merchant_id AND c.id = e.card_id
           WHERE s.merchant_id = $1 AND s.id = $3
             AND e.actor_type = 'terminal' AND e.actor_id = $2 AND e.kind = 'redeem'
             AND e.created_at >= date_trunc('day', now() AT TIME ZONE s.timezone) AT TIME ZONE s.timezone
           ORDER BY e.id DESC LIMIT $4""",
        principal.merchant_id,
        principal.id,
        principal.store_id,
        TODAY_MAX,
    )
    allowed = may_refund(principal, store_id=principal.store_id, today=True)
    data = [
        TerminalRedemption(
            id=ledger.activity_id(row["id"]),
            card=row["card_id"],
            code_last4=row["code_last4"],
            amount_taken=-row["amount"],
            refundable_amount=row["refundable"],
            currency=row["currency"],
            reference=row["reference"],
            can_refund=allowed and row["refundable"] > 0,
            created_at=iso(row["created_at"]),
        )
        for row in rows
    ]
    return Page(data=data, has_more=len(data) == TODAY_MAX)


# -- views --------------------------------------------------------------------------------------------------


def store_view(row: asyncpg.Record) -> Store:
    return Store(
        id=row["id"],
        name=row["name"],
        redeem_limit=row["redeem_limit"],
        timezone=row["timezone"],
        created_at=iso(row["created_at"]),
        updated_at=iso(row["updated_at"]),
    )


def terminal_view(row: asyncpg.Record) -> Terminal:
    if row["revoked_at"] is not None:
        state = "revoked"
    elif row["token_hash"] is not None:
        state = "active"
    else:
        state = "awaiting_enrollment"
    return Terminal(
        id=row["id"],
        store=row["store_id"],
        label=row["label"],
        role=row["role"],
        state=state,  # type: ignore[arg-type]
        token_last4=row["token_last4"],
        enrolled_at=iso(row["enrolled_at"]),
        revoked_at=iso(row["revoked_at"]),
        flagged_at=iso(row["flagged_at"]),
        created_at=iso(row["created_at"]),
    )

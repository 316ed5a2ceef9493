"""Cards: issue (one or a batch), find by id, code or QR payload, list, and every money operation.

Every change of value goes through `ledger.post`; this module decides which card is meant and what the
caller gets back. A typed code is found by its keyed hash (a database dump cannot test codes), and kept
sealed so it can be shown again; a QR payload is verified before any balance is read.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from giftcards.core import ids
from giftcards.core.errors import DomainError, found
from giftcards.core.isotime import iso, utcnow
from giftcards.core.sealing import Keyring
from giftcards.core.shapes import PAGE_LIMIT_DEFAULT, Page, page
from giftcards.db.commits import after_commit
from giftcards.db.pool import held
from giftcards.observability import metrics
from giftcards.qr.keys import QrKeys
from giftcards.qr.signing import QrClaims
from giftcards.stores.merchants import Principal
from giftcards.value import codes, ledger
from giftcards.value.ledger import Actor
from giftcards.value.shapes import BATCH_MAX, Activity, BatchCard, Card, CardBatch

QR_STEP_SECONDS = 30  # a rotating payload is good for its own step and the one before: 30 to 60 s
_CARD_COLUMNS = (
    "merchant_id, id, code_hash, code_sealed, code_last4, currency, initial_amount, balance, state, "
    "expires_at, campaign, design_id, batch_id, owner_id"
)


@dataclass(frozen=True)
class CardSpec:
    """What a new card is: the same for one card or for each card of a batch."""

    amount: int
    currency: str = "CNY"
    expires_at: datetime | None = None
    campaign: str | None = None
    design_id: str | None = None
    owner_id: str | None = None
    pending: bool = False


@dataclass(frozen=True)
class NewCard:
    id: str
    code: str
    row: tuple[Any, ...]


def _new_card(keyring: Keyring, merchant_id: str, spec: CardSpec, batch_id: str | None) -> NewCard:
    card_id = ids.new_id("card")
    code = codes.generate_code()
    row = (
        merchant_id,
        card_id,
        keyring.code_hash(code),
        keyring.box.seal(code.encode(), context=_code_context(card_id)),
        code[-4:],  # generate_code's codes are canonical already
        spec.currency,
        spec.amount,
        spec.amount,
        "pending" if spec.pending else "active",
        spec.expires_at,
        spec.campaign,
        spec.design_id,
        batch_id,
        spec.owner_id,
    )
    return NewCard(card_id, code, row)


def _code_context(card_id: str) -> bytes:
    return b"card-code:" + card_id.encode()


@contextlib.asynccontextmanager
async def _design_of_the_merchant() -> AsyncIterator[None]:
    """The schema refuses a card whose design is not its merchant's (card_design_of_its_merchant): the
    caller is told as for any design it cannot see."""
    try:
        yield
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name != "card_design_of_its_merchant":
            raise
        raise DomainError("design_not_found", "no such design") from None


def _check_spec(spec: CardSpec) -> None:
    if spec.expires_at is not None and spec.expires_at <= utcnow():
        raise DomainError(
            "invalid_request",
            "expires_at must be in the future",
            errors=[{"field": "expires_at", "message": "must be in the future"}],
        )


@_design_of_the_merchant()
async def issue(conn: asyncpg.Connection, keyring: Keyring, principal: Principal, spec: CardSpec) -> Card:
    """One card, with its `issue` entry; the code is in the answer (and kept sealed for later)."""
    _check_spec(spec)
    card = _new_card(keyring, principal.merchant_id, spec, None)
    actor = Actor.of(principal)
    async with conn.transaction():
        await conn.execute(
            # The column list is a constant of this module; every value is a parameter.
            f"INSERT INTO cards ({_CARD_COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)",  # noqa: S608
            *card.row,
        )
        await conn.execute(
            """INSERT INTO ledger_entries (merchant_id, card_id, kind, amount, balance_after, currency,
                                           actor_type, actor_id, store_id)
               VALUES ($1, $2, 'issue', $3, $3, $4, $5, $6, $7)""",
            principal.merchant_id,
            card.id,
            spec.amount,
            spec.currency,
            actor.type,
            actor.id,
            actor.store_id,
        )
        row = await fetch(conn, principal.merchant_id, card.id)
    after_commit(conn, metrics.CARDS_ISSUED.inc)
    return msgspec.structs.replace(card_view(row), code=codes.format_code(card.code))


@_design_of_the_merchant()
async def issue_batch(
    conn: asyncpg.Connection, keyring: Keyring, principal: Principal, spec: CardSpec, count: int
) -> CardBatch:
    """Many cards in one transaction: COPY for the cards, one INSERT ... SELECT for their `issue` entries.

    The rows are made as COPY sends them, not all held in a list first (bench/README.md: bulk issuance).
    """
    _check_spec(spec)
    if not 1 <= count <= BATCH_MAX:
        raise DomainError("invalid_request", f"count must be between 1 and {BATCH_MAX}")
    batch_id = ids.new_id("batch")
    merchant_id = principal.merchant_id
    actor = Actor.of(principal)
    async with conn.transaction():
        batch = await conn.fetchrow(
            """INSERT INTO card_batches (merchant_id, id, count, amount, currency) VALUES ($1, $2, $3, $4, $5)
               RETURNING *""",
            merchant_id,
            batch_id,
            count,
            spec.amount,
            spec.currency,
        )
        await conn.copy_records_to_table(
            "cards",
            records=(_new_card(keyring, merchant_id, spec, batch_id).row for _ in range(count)),
            columns=_CARD_COLUMNS.split(", "),
        )
        await conn.execute(
            """INSERT INTO ledger_entries (merchant_id, card_id, kind, amount, balance_after, currency,
                                           actor_type, actor_id, store_id)
               SELECT merchant_id, id, 'issue', initial_amount, initial_amount, currency, $3, $4, $5
                 FROM cards WHERE merchant_id = $1 AND batch_id = $2
                ORDER BY id""",
            merchant_id,
            batch_id,
            actor.type,
            actor.id,
            actor.store_id,
        )
    after_commit(conn, lambda: metrics.CARDS_ISSUED.inc(count))
    return batch_view(batch)


async def get_batch(conn: asyncpg.Connection, merchant_id: str, batch_id: str) -> CardBatch:
    row = await conn.fetchrow(
        "SELECT * FROM card_batches WHERE merchant_id = $1 AND id = $2", merchant_id, batch_id
    )
    return batch_view(found(row, "card batch"))


async def batch_codes(
    conn: asyncpg.Connection, keyring: Keyring, merchant_id: str, batch_id: str
) -> AsyncIterator[BatchCard]:
    """The cards of a batch with their codes, unsealed one by one as they stream out."""
    async with conn.transaction():
        async for row in conn.cursor(
            """SELECT id, code_sealed, balance, currency, state, expires_at FROM cards
               WHERE merchant_id = $1 AND batch_id = $2 ORDER BY id""",
            merchant_id,
            batch_id,
            prefetch=1000,
        ):
            code = keyring.box.open(bytes(row["code_sealed"]), context=_code_context(row["id"])).decode()
            yield BatchCard(
                row["id"],
                codes.format_code(code),
                row["balance"],
                row["currency"],
                row["state"],
                iso(row["expires_at"]),
            )


async def reveal_code(conn: asyncpg.Connection, keyring: Keyring, merchant_id: str, card_id: str) -> str:
    row = found(
        await conn.fetchrow(
            "SELECT code_sealed FROM cards WHERE merchant_id = $1 AND id = $2", merchant_id, card_id
        ),
        "card",
        "card_not_found",
    )
    return codes.format_code(
        keyring.box.open(bytes(row["code_sealed"]), context=_code_context(card_id)).decode()
    )


async def replace_code(conn: asyncpg.Connection, keyring: Keyring, merchant_id: str, card_id: str) -> None:
    """Give a card a fresh code (when it is passed on), so a copy of the old one no longer spends it; the
    same UPDATE moves its payload generation on (trigger card_passed_on), which ends its QR payloads."""
    code = codes.generate_code()
    await conn.execute(
        """UPDATE cards SET code_hash = $3, code_sealed = $4, code_last4 = $5, updated_at = now()
           WHERE merchant_id = $1 AND id = $2""",
        merchant_id,
        card_id,
        keyring.code_hash(code),
        keyring.box.seal(code.encode(), context=_code_context(card_id)),
        codes.last4(code),
    )


async def get(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> Card:
    return card_view(await fetch(conn, merchant_id, card_id))


async def fetch(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM cards WHERE merchant_id = $1 AND id = $2", merchant_id, card_id)
    return found(row, "card", "card_not_found")


async def sign_qr(conn: asyncpg.Connection, qr_keys: QrKeys, card: asyncpg.Record, *, step: int = 0) -> str:
    """A payload of the card (a row from `fetch`) for the payload generation read with it. Passing the card
    on, or a new code, moves the generation on, and the database refuses payloads of an older one."""
    return await qr_keys.sign(
        conn, card["merchant_id"], card["id"], step=step, generation=card["payload_generation"]
    )


async def static_qr(conn: asyncpg.Connection, qr_keys: QrKeys, merchant_id: str, card_id: str) -> str:
    """The card's static payload (step 0): good until the card is passed on or gets a new code."""
    return await sign_qr(conn, qr_keys, await fetch(conn, merchant_id, card_id))


async def end_payloads(conn: asyncpg.Connection, merchant_id: str, card_id: str) -> None:
    """End every payload of the card issued so far, for a change of holder that leaves owner_id and the
    code as they are (a gift inside WeChat's wallet); other changes of holder do it in their own UPDATE."""
    await conn.execute(
        """UPDATE cards SET payload_generation = next_payload_generation(payload_generation),
                            updated_at = now()
           WHERE merchant_id = $1 AND id = $2""",
        merchant_id,
        card_id,
    )


async def list_cards(
    conn: asyncpg.Connection,
    merchant_id: str,
    *,
    limit: int = PAGE_LIMIT_DEFAULT,
    starting_after: str | None = None,
    state: str | None = None,
    campaign: str | None = None,
    created_gte: datetime | None = None,
    created_lt: datetime | None = None,
) -> Page[Card]:
    """Newest first, with a cursor (the last id of the page) that stays correct while cards are added."""
    cursor_at = None
    if starting_after is not None:
        cursor_at = await conn.fetchval(
            "SELECT created_at FROM cards WHERE merchant_id = $1 AND id = $2", merchant_id, starting_after
        )
        if cursor_at is None:
            raise DomainError("invalid_request", "starting_after names no card of yours")
    rows = await conn.fetch(
        """SELECT * FROM cards
           WHERE merchant_id = $1
             AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
             AND ($4::text IS NULL OR (CASE WHEN state IN ('pending', 'active', 'blocked')
                                             AND expires_at <= now() THEN 'expired' ELSE state END) = $4)
             AND ($5::text IS NULL OR campaign = $5)
             AND ($6::timestamptz IS NULL OR created_at >= $6)
             AND ($7::timestamptz IS NULL OR created_at < $7)
           ORDER BY created_at DESC, id DESC
           LIMIT $8""",
        merchant_id,
        cursor_at,
        starting_after,
        state,
        campaign,
        created_gte,
        created_lt,
        limit + 1,
    )
    return page([card_view(row) for row in rows], limit)


async def list_activities(
    conn: asyncpg.Connection, merchant_id: str, card_id: str, *, limit: int, starting_after: str | None
) -> Page[Activity]:
    """Newest first; the cursor is an activity id."""
    await fetch(conn, merchant_id, card_id)
    before = ledger.parse_activity_id(starting_after) if starting_after else None
    rows = await conn.fetch(
        """SELECT * FROM ledger_entries
           WHERE merchant_id = $1 AND card_id = $2 AND ($3::bigint IS NULL OR id < $3)
           ORDER BY id DESC LIMIT $4""",
        merchant_id,
        card_id,
        before,
        limit + 1,
    )
    return page([ledger.activity_view(row) for row in rows], limit)


# -- money and state operations -------------------------------------------------------------------------


@dataclass(frozen=True)
class CardRef:
    """How the caller names the card: its id (back office), its typed code or a QR payload (till)."""

    card_id: str | None = None
    code: str | None = None
    qr_payload: str | None = None


async def resolve(
    conn: asyncpg.Connection, keyring: Keyring, qr_keys: QrKeys, merchant_id: str, ref: CardRef
) -> dict[str, Any]:
    """The keyword arguments that name the card to `ledger.post`. A forged, foreign or stale QR payload
    and an unknown, foreign or malformed code each get one and the same answer."""
    if ref.card_id is not None:
        return {"card_id": ref.card_id}
    if ref.qr_payload is not None:
        claims = await qr_keys.verify(held(conn), ref.qr_payload)
        if not claims_fit(claims, merchant_id):
            raise DomainError("invalid_qr_payload", "the QR payload is not genuine or not readable")
        return {"card_id": claims.card_id, "payload_generation": claims.generation}
    assert ref.code is not None
    code_hash = typed_code_hash(keyring, ref.code)
    if code_hash is None:
        raise DomainError("invalid_code", "no card matches this code")
    return {"code_hash": code_hash}


def claims_fit(claims: QrClaims, merchant_id: str) -> bool:
    """A genuine payload is still refused when it names another merchant's card or an old step."""
    return claims.merchant_id == merchant_id and step_is_fresh(claims.step)


def typed_code_hash(keyring: Keyring, raw: str) -> bytes | None:
    """The lookup hash of a typed code, or None when it is not a well-formed code at all."""
    try:
        return keyring.code_hash(codes.normalize_code(raw))
    except codes.MalformedCode:
        return None


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // QR_STEP_SECONDS)


def step_is_fresh(step: int) -> bool:
    return step == 0 or current_step() - 1 <= step <= current_step()


async def lookup(
    conn: asyncpg.Connection, keyring: Keyring, qr_keys: QrKeys, merchant_id: str, ref: CardRef
) -> Card:
    target = await resolve(conn, keyring, qr_keys, merchant_id, ref)
    if "card_id" in target:  # a payload of another generation than the card's names no card
        row = await conn.fetchrow(
            """SELECT * FROM cards WHERE merchant_id = $1 AND id = $2
                                     AND ($3::integer IS NULL OR payload_generation = $3)""",
            merchant_id,
            target["card_id"],
            target.get("payload_generation"),
        )
    else:
        row = await conn.fetchrow(
            "SELECT * FROM cards WHERE merchant_id = $1 AND code_hash = $2", merchant_id, target["code_hash"]
        )
    if row is None:
        raise DomainError(
            "invalid_qr_payload" if ref.qr_payload else "invalid_code", "no card matches this code"
        )
    return card_view(row)


async def refund(
    conn: asyncpg.Connection,
    principal: Principal,
    *,
    redemption_id: str,
    amount: int | None,
    reference: str | None = None,
    idempotency_key: str | None = None,
) -> Activity:
    """Money back onto the card, tied to a redemption; several partial refunds never exceed it."""
    entry = await ledger.fetch_entry(conn, principal.merchant_id, ledger.parse_activity_id(redemption_id))
    if entry["kind"] != "redeem":
        raise DomainError("not_a_redemption", "only a redemption can be refunded")
    if amount is None:  # the whole of what is left
        refunded = await conn.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE merchant_id = $1 AND refund_of = $2",
            principal.merchant_id,
            entry["id"],
        )
        amount = -entry["amount"] - refunded
        if amount <= 0:
            raise DomainError(
                "refund_exceeds_redemption", "the redemption has been refunded in full", refundable_amount=0
            )
    posting = await ledger.post(
        conn,
        merchant_id=principal.merchant_id,
        kind="refund",
        actor=Actor.of(principal),
        card_id=entry["card_id"],
        amount=amount,
        refund_of=entry["id"],
        reference=reference,
        idempotency_key=idempotency_key,
    )
    return ledger.posting_view(
        posting, refund_of=ledger.activity_id(entry["id"]), refundable_amount=posting.refundable
    )


async def change(
    conn: asyncpg.Connection,
    principal: Principal,
    card_id: str,
    kind: str,
    *,
    amount: int | None = None,
    currency: str | None = None,
    reason: str | None = None,
    reference: str | None = None,
    idempotency_key: str | None = None,
) -> Activity:
    """load, adjust, activate, block, unblock, deactivate: one posting on a card named by id."""
    posting = await ledger.post(
        conn,
        merchant_id=principal.merchant_id,
        kind=kind,
        actor=Actor.of(principal),
        card_id=card_id,
        amount=amount,
        currency=currency,
        reason=reason,
        reference=reference,
        idempotency_key=idempotency_key,
    )
    return ledger.posting_view(posting)


async def expire_due(conn: asyncpg.Connection, *, limit: int = 500) -> int:
    """Write an `expire` activity (the breakage) for cards past their expiry; each in its own transaction."""
    due = await conn.fetch(
        """SELECT merchant_id, id FROM cards
           WHERE state IN ('pending', 'active', 'blocked') AND expires_at <= now()
           ORDER BY expires_at LIMIT $1""",
        limit,
    )
    done = 0
    for row in due:
        try:
            await ledger.post(
                conn, merchant_id=row["merchant_id"], kind="expire", actor=ledger.SYSTEM, card_id=row["id"]
            )
            done += 1
        except DomainError:
            pass  # changed meanwhile (blocked → deactivated, already expired by another worker)
    return done


# -- views ---------------------------------------------------------------------------------------------


def effective_state(state: str, expires_at: datetime | None) -> str:
    """A card past its expiry reads as expired even before the worker has written the entry."""
    if state in ("pending", "active", "blocked") and expires_at is not None and expires_at <= utcnow():
        return "expired"
    return state


def card_view(row: asyncpg.Record) -> Card:
    return Card(
        id=row["id"],
        state=effective_state(row["state"], row["expires_at"]),  # type: ignore[arg-type]
        balance=row["balance"],
        currency=row["currency"],
        initial_amount=row["initial_amount"],
        expires_at=iso(row["expires_at"]),
        campaign=row["campaign"],
        design_id=row["design_id"],
        batch_id=row["batch_id"],
        owner_id=row["owner_id"],
        code_last4=row["code_last4"],
        created_at=iso(row["created_at"]),
        updated_at=iso(row["updated_at"]),
    )


def batch_view(row: asyncpg.Record) -> CardBatch:
    return CardBatch(
        id=row["id"],
        count=row["count"],
        amount=row["amount"],
        currency=row["currency"],
        created_at=iso(row["created_at"]),
    )

"""One idempotency mechanism for every mutating call.

The key's row is inserted in the same transaction as the work it guards. So a crash or an error leaves
neither behind; a concurrent duplicate blocks on the primary key until the first commits and then replays
its outcome; a retry after the first committed gets the stored status and body, without doing the work
again. Refusals a client can act on (4xx) are stored like successes; authentication failures, rate
limits and 5xx are not, because trying again later may rightly succeed.

Work that waits on another service (WeChat) must hold no transaction, so its answer is stored after it,
in a transaction of its own (`run_apart`); that work finds what an earlier run of it made, so a duplicate
that ran beside it answers with the first stored answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec

from giftcards.core.errors import DomainError, problem_document
from giftcards.core.sealing import SecretBox
from giftcards.db.commits import transaction
from giftcards.db.pool import Connect

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
RETENTION_HOURS = 48  # promised: at least 24
_NOT_STORED = {401, 403, 429}

Work = Callable[[asyncpg.Connection], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class Outcome:
    status: int
    body: bytes
    replayed: bool


def request_fingerprint(method: str, path: str, body: Any) -> bytes:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).digest()


def check_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise DomainError("invalid_idempotency_key", "use 1 to 255 visible ASCII characters, e.g. a UUID")
    return key


async def run_once(
    conn: asyncpg.Connection,
    box: SecretBox,
    *,
    merchant_id: str,
    principal_id: str,
    key: str,
    fingerprint: bytes,
    work: Work,
) -> Outcome:
    async with transaction(conn):  # the work may count what it did once this commits (db/commits.py)
        claimed = await conn.fetchval(
            "SELECT claim_idempotency_key($1, $2, $3, $4)", merchant_id, principal_id, key, fingerprint
        )
        if not claimed:
            return await _replay(conn, box, merchant_id, principal_id, key, fingerprint)
        try:
            async with transaction(conn):  # a savepoint: a refusal undoes only the work
                status, payload = await work(conn)
        except DomainError as exc:
            status, payload = _stored_refusal(exc)
        body = encode(payload)
        await conn.execute(
            """UPDATE idempotency_keys SET status = $4, body = $5
               WHERE merchant_id = $1 AND principal_id = $2 AND key = $3""",
            merchant_id,
            principal_id,
            key,
            status,
            box.seal(body, context=answer_context(merchant_id, principal_id, key)),
        )
    return Outcome(status, body, replayed=False)


async def run_apart(
    connect: Connect,
    box: SecretBox,
    *,
    merchant_id: str,
    principal_id: str,
    key: str,
    fingerprint: bytes,
    work: Callable[[], Awaitable[tuple[int, Any]]],
) -> Outcome:
    """The same guarantee for work that waits on another service and so must hold no transaction: a
    stored answer is replayed; otherwise the work runs, and its answer is stored afterwards, in a short
    transaction of its own. The work must find what an earlier run of it made (a WeChat sync does, under
    a lease): two concurrent duplicates may both run it, and the second then answers with the first's."""
    async with connect() as conn:
        row = await _stored(conn, merchant_id, principal_id, key)
    context = answer_context(merchant_id, principal_id, key)
    if row is not None:
        return stored_outcome(row, fingerprint, box, context)
    try:
        status, payload = await work()
    except DomainError as exc:
        status, payload = _stored_refusal(exc)
    body = encode(payload)
    async with connect() as conn:
        stored = await conn.fetchval(
            """INSERT INTO idempotency_keys (merchant_id, principal_id, key, request_hash, status, body)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true""",
            merchant_id,
            principal_id,
            key,
            fingerprint,
            status,
            box.seal(body, context=context),
        )
        if not stored:
            return await _replay(conn, box, merchant_id, principal_id, key, fingerprint)
    return Outcome(status, body, replayed=False)


def _stored_refusal(exc: DomainError) -> tuple[int, Any]:
    """A refusal to store as the key's answer; the ones trying again may rightly change are raised."""
    if exc.status in _NOT_STORED or exc.status >= 500:
        raise exc
    return exc.status, problem_document(exc.code, exc.detail, **exc.extra)


async def _stored(
    conn: asyncpg.Connection, merchant_id: str, principal_id: str, key: str
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT request_hash, status, body FROM idempotency_keys
           WHERE merchant_id = $1 AND principal_id = $2 AND key = $3""",
        merchant_id,
        principal_id,
        key,
    )


async def _replay(
    conn: asyncpg.Connection,
    box: SecretBox,
    merchant_id: str,
    principal_id: str,
    key: str,
    fingerprint: bytes,
) -> Outcome:
    row = await _stored(conn, merchant_id, principal_id, key)
    if row is None or row["status"] is None:  # written with its answer, in the claim's transaction
        raise DomainError("internal_error")
    return stored_outcome(row, fingerprint, box, answer_context(merchant_id, principal_id, key))


def stored_outcome(row: Mapping[str, Any], fingerprint: bytes, box: SecretBox, context: bytes) -> Outcome:
    """The replay of a stored answer, for the same request only. Answers are stored sealed: some carry a
    secret shown once (a card code, an API key, a gift link) and a database dump must not reveal it. (A
    redemption's key keeps its posting instead, written and replayed by its statement, value/redemption.)"""
    if bytes(row["request_hash"]) != fingerprint:
        raise conflict()
    return Outcome(row["status"], box.open(bytes(row["body"]), context=context), replayed=True)


def conflict() -> DomainError:
    return DomainError("idempotency_conflict", "this Idempotency-Key was first used with a different request")


def answer_context(merchant_id: str, principal_id: str, key: str) -> bytes:
    return f"idempotency:{merchant_id}:{principal_id}:{key}".encode()


async def purge_expired(conn: asyncpg.Connection) -> int:
    result = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => $1)", RETENTION_HOURS
    )
    return int(result.split()[-1])


def encode(payload: Any) -> bytes:
    """An answer's bytes, as web/routing.json_response writes them (dicts and msgspec Structs alike)."""
    return msgspec.json.encode(payload)

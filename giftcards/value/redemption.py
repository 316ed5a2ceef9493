"""A till's redemption: the one path every redemption takes, whatever its credential or its body's transport.

Python does what must be Python: it reads the request, checks a QR payload's signature and computes a
typed code's keyed hash (`prepare`). The database statement does the rest and owns every answer, refusals
included (`redeem_requests`, schema/functions/redemption.sql): it authenticates the credential, finds
the Idempotency-Key's answer, applies the terminal's limits, posts to the ledger, counts a failed lookup,
writes the staff-log row and keeps the posting as the key's answer. Python renders each answer from the
row it gets back, the first time and on a replay alike (`redeem_many`).

Redemptions that arrive while earlier ones are with the database wait for them and then go together, in
one statement and so one transaction and one commit (`Batcher`). A lone redemption goes at once; batches
form only under load, where sharing the commit is what lets the database keep up (bench/README.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import asyncpg

from giftcards.core import idempotency
from giftcards.core.errors import DomainError
from giftcards.core.sealing import Keyring
from giftcards.db.pool import Connect, acquire_within, discard
from giftcards.observability import metrics
from giftcards.qr.keys import QrKeys
from giftcards.stores import ratelimit, staff_log
from giftcards.stores.merchants import API_KEY_PREFIX, UNKNOWN_KEY, token_merchant
from giftcards.stores.terminals import TOKEN_PREFIX as TERMINAL_PREFIX
from giftcards.stores.terminals import UNKNOWN_TOKEN
from giftcards.value import cards, ledger

_TOKEN_PREFIXES = {"api_key": API_KEY_PREFIX, "terminal": TERMINAL_PREFIX}


_UNKNOWN = {"api_key": UNKNOWN_KEY, "terminal": UNKNOWN_TOKEN}


def _unknown(token_kind: str) -> DomainError:
    return DomainError("unauthenticated", _UNKNOWN[token_kind])


@dataclass(frozen=True)
class Redemption:
    """One redemption as Python has read and checked it: what redeem_request takes, in its order.

    `refused` names what Python found wrong before the database: `invalid_request` (the body is not a
    redemption: answered with `invalid`, once the credential is known good), `invalid_qr_payload` (forged,
    foreign or stale) or `invalid_code` (malformed): the database still authenticates, counts and logs it.
    """

    token_kind: str  # api_key | terminal
    merchant_id: str
    token_hash: bytes
    client: str | None
    key: str | None
    fingerprint: bytes
    refused: str | None
    kid: str | None  # of a verified QR payload; the database checks that it is not retired
    card_id: str | None
    payload_generation: int | None  # of a verified QR payload; the database checks it is the card's own
    code_hash: bytes | None
    code_last4: str | None
    amount: int | None
    currency: str | None
    allow_partial: bool
    reference: str | None
    invalid: DomainError | None = None  # why the body is not a redemption; not sent to the database

    @property
    def card_order(self) -> str:
        """Batches lock cards in this order, so that two batches sharing cards cannot deadlock."""
        return self.card_id or (self.code_hash or b"").hex()

    @property
    def key_scope(self) -> tuple[str, bytes, str] | None:
        """Whose Idempotency-Key this is: two redemptions with the same one never share a batch."""
        return None if self.key is None else (self.merchant_id, self.token_hash, self.key)


_SENT = tuple(f.name for f in fields(Redemption) if f.name != "invalid")
_CALL = (  # one array per field, then the terminal limits
    "SELECT * FROM redeem_requests("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
)


async def prepare(
    keyring: Keyring,
    qr_keys: QrKeys,
    connect: Connect,
    *,
    token_kind: str,
    token: str,
    client: str | None,
    key: str | None,
    fingerprint: bytes,
    body: Mapping[str, Any] | None,
    invalid: DomainError | None = None,
) -> Redemption:
    """The redemption a request asks for; `body` None when it could not be read (`invalid` says why).
    `connect` lends a connection only to reload the QR keys, which happens every few seconds at most."""
    merchant_id = token_merchant(token, _TOKEN_PREFIXES[token_kind])
    if merchant_id is None:
        raise _unknown(token_kind)
    body = body or {}
    card: dict[str, Any] = {"kid": None, "card_id": None, "payload_generation": None, "code_hash": None}
    refused = "invalid_request" if invalid is not None else None
    if refused is None and "qr_payload" in body:
        try:
            claims = await qr_keys.verify(connect, body["qr_payload"])
        except DomainError as exc:
            if exc.code != "invalid_qr_payload":  # the database could not be asked to reload the keys
                raise
            claims = None
        if claims is None or not cards.claims_fit(claims, merchant_id):
            refused = "invalid_qr_payload"
        else:
            card.update(kid=claims.kid, card_id=claims.card_id, payload_generation=claims.generation)
    elif refused is None:
        card["code_hash"] = cards.typed_code_hash(keyring, body["code"])
        refused = "invalid_code" if card["code_hash"] is None else None
    return Redemption(
        token_kind=token_kind,
        merchant_id=merchant_id,
        token_hash=keyring.token_hash(token),
        client=client,
        key=key,
        fingerprint=fingerprint,
        refused=refused,
        code_last4=staff_log.typed_last4(body.get("code")),
        amount=body.get("amount"),
        currency=body.get("currency"),
        allow_partial=body.get("allow_partial", False),
        reference=body.get("reference"),
        invalid=invalid,
        **card,
    )


Answer = idempotency.Outcome | Exception  # a refusal (DomainError) or a database error, raised


async def redeem_many(conn: asyncpg.Connection, batch: Sequence[Redemption]) -> list[Answer]:
    """The answer to each redemption, in the order given, all written in one statement. A batch the
    database undid (it lost a race to another batch, or one of its items met an error) is sent again one
    redemption at a time, so that each gets its own answer."""
    if len(batch) == 1:
        return [await _redeem_alone(conn, batch[0])]
    try:
        return await _redeem_together(conn, batch)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate[:2] in _SERVER_IN_TROUBLE:
            raise
    return [await _redeem_alone(conn, redemption) for redemption in batch]


# Not the items' doing but the connection's or the server's (08, 53, 57, 58): raised for the whole batch.
_SERVER_IN_TROUBLE = ("08", "53", "57", "58")
# Another transaction got there first (a twin's Idempotency-Key, two batches waiting on each other): the
# same redemption sent again finds what the other wrote.
_LOST_A_RACE = ("23505", "40001", "40P01")


async def _redeem_alone(conn: asyncpg.Connection, redemption: Redemption, *, races_left: int = 1) -> Answer:
    try:
        return (await _redeem_together(conn, [redemption]))[0]
    except asyncpg.PostgresError as exc:
        if exc.sqlstate[:2] in _SERVER_IN_TROUBLE:
            raise
        if exc.sqlstate in _LOST_A_RACE and races_left:
            return await _redeem_alone(conn, redemption, races_left=races_left - 1)
        return exc  # this request's own error, answered as one; the rest of the batch goes on


async def _redeem_together(conn: asyncpg.Connection, batch: Sequence[Redemption]) -> list[Answer]:
    ordered = sorted(range(len(batch)), key=lambda i: batch[i].card_order)
    columns = [[getattr(batch[i], name) for i in ordered] for name in _SENT]  # one array per parameter
    answers: dict[int, Answer] = {}
    for row in await conn.fetch(_CALL, *columns, ratelimit.TERMINAL_LIMITS):
        i = ordered[row["item"] - 1]
        answers[i] = _answer(row, batch[i])
    return [answers[i] for i in range(len(batch))]


def _answer(row: Mapping[str, Any], redemption: Redemption) -> Answer:
    _count(row, redemption)
    outcome = row["outcome"]
    if outcome == "unauthenticated":
        return _unknown(redemption.token_kind)
    if outcome == "invalid_request":
        assert redemption.invalid is not None
        return redemption.invalid
    if outcome == "rate_limited":
        return ratelimit.refusal(row["retry_after"], ratelimit.TERMINAL)
    if outcome == "store_limit_exceeded":
        limit = row["store_limit"]
        return DomainError(
            "store_limit_exceeded", f"a clerk terminal may take at most {limit} at once", limit=limit
        )
    if outcome == "idempotency_conflict":
        return idempotency.conflict()
    status, payload = ledger.redemption_answer(row)
    return idempotency.Outcome(status, idempotency.encode(payload), replayed=row["replayed"])


def _count(row: Mapping[str, Any], redemption: Redemption) -> None:
    """The metrics of one answer. Its statement ran alone, outside any transaction, so what it did has
    committed by the time its rows arrive; a replay did nothing again."""
    outcome = row["outcome"]
    metrics.REDEMPTIONS.labels(outcome).inc()
    if row["replayed"]:
        return
    if outcome == "ok":
        metrics.REDEEMED.labels(row["card_currency"]).inc(-row["entry_amount"])
    elif outcome in ratelimit.LOOKUP_FAILURES and redemption.token_kind == "terminal":  # noqa: S105 (a kind, no secret)
        metrics.FAILED_ATTEMPTS.labels(ratelimit.TERMINAL).inc()  # as the statement counted it


Waiting = tuple[Redemption, "asyncio.Future[Answer]"]


class Batcher:
    """Sends redemptions to the database: at most `in_flight` senders, each sending one statement at a time
    of at most `largest` redemptions; what arrives meanwhile waits for the next statement.

    A sender keeps its connection for as long as redemptions are waiting and sends the next batch as soon
    as the last one is answered: under load the database would otherwise sit idle while the event loop,
    busy with the requests, got round to a pool release, a new task and a pool acquire between batches.
    """

    def __init__(self, pool: asyncpg.Pool, *, timeout: float, in_flight: int, largest: int = 32) -> None:
        self._pool = pool
        self._timeout = timeout
        self._in_flight_limit = in_flight
        self._largest = largest
        self._waiting: list[Waiting] = []
        self._senders = 0
        self._tasks: set[asyncio.Task[None]] = set()  # referenced until done, as asyncio requires

    async def redeem(self, redemption: Redemption) -> idempotency.Outcome:
        """The redemption's answer; a refusal that is not stored with a key (401, 429...) is raised."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((redemption, future))
        if self._senders < self._in_flight_limit:
            self._senders += 1
            task = asyncio.create_task(self._send_while_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        answer = await future
        if isinstance(answer, Exception):
            raise answer
        return answer

    def _next_batch(self) -> list[Waiting]:
        """The longest-waiting redemptions, at most `largest`, no two with the same key: a twin waits for
        the next batch and is then answered with the first one's answer."""
        batch: list[Waiting] = []
        rest: list[Waiting] = []
        keys: set[tuple[str, bytes, str]] = set()
        for waiting in self._waiting:
            scope = waiting[0].key_scope
            if len(batch) < self._largest and (scope is None or scope not in keys):
                batch.append(waiting)
                if scope is not None:
                    keys.add(scope)
            else:
                rest.append(waiting)
        self._waiting = rest
        return batch

    async def _send_while_waiting(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while self._waiting:
                batch = self._next_batch()
                try:
                    if conn is None:
                        conn = await acquire_within(self._pool, self._timeout)
                    metrics.REDEMPTION_BATCH_SIZE.observe(len(batch))
                    answers = await redeem_many(conn, [redemption for redemption, _ in batch])
                except asyncio.CancelledError:  # this process is stopping
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # e.g. the database is unavailable: each request here says so
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if conn is not None:  # it failed mid-statement: never again, the next batch asks anew
                        discard(conn)
                        conn = None
                else:
                    for (_, future), answer in zip(batch, answers, strict=True):
                        if not future.done():  # its request may have been cancelled meanwhile
                            future.set_result(answer)
        finally:
            # No await between the last look at the queue and this: a redemption arriving from here on
            # sees a free place and starts a sender of its own.
            self._senders -= 1
            if conn is not None:
                await self._pool.release(conn)

"""The redemption a till makes all day, in one round trip to the database (`redeem_requests`, schema/0008).

It covers the plain case only and says so by answering None for anything else; the caller then takes the
general path, which owns every other answer (limits, unknown cards, retried keys). Both paths store
idempotency keys the same way.

Redemptions that arrive while earlier ones are with the database wait for them and then go together, in
one statement and so one transaction and one commit (`Batcher`). A lone redemption goes at once; batches
form only under load, where sharing the commit is what lets the database keep up (bench/README.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields

import asyncpg

from giftcards.core import idempotency
from giftcards.db.pool import acquire_within, is_unavailable
from giftcards.stores import ratelimit
from giftcards.value import ledger


@dataclass(frozen=True)
class QuickRedemption:
    """What the caller has checked already: the credential's form, the body, the signed payload."""

    token_kind: str  # api_key | terminal
    merchant_id: str
    token_hash: bytes
    client: str | None
    key: str | None
    fingerprint: bytes
    kid: str | None  # of a verified QR payload; the database checks that it is not retired
    card_id: str | None
    payload_generation: int | None  # of a verified QR payload; the database checks it is the card's own
    code_hash: bytes | None
    code_last4: str | None
    amount: int
    currency: str | None
    allow_partial: bool
    reference: str | None

    @property
    def card_order(self) -> str:
        """Batches lock cards in this order, so that two batches sharing cards cannot deadlock."""
        return self.card_id or (self.code_hash or b"").hex()


_FIELDS = tuple(field.name for field in fields(QuickRedemption))  # in redeem_requests' parameter order
_CALL = (
    "SELECT item, route, posting FROM redeem_requests("
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
)
# The limits of terminal_subjects' three counters (stores/ratelimit.py) and their window, in the order
# redeem_requests takes them.
_LIMITS = (
    ratelimit.LIMIT,
    ratelimit.ADDRESS_LIMIT,
    ratelimit.PLATFORM_ADDRESS_LIMIT,
    ratelimit.WINDOW_SECONDS,
)


async def redeem_many(
    conn: asyncpg.Connection, batch: Sequence[QuickRedemption]
) -> list[idempotency.Outcome | None]:
    """The outcome of each redemption, in the order given; None where the general path must answer."""
    ordered = sorted(range(len(batch)), key=lambda i: batch[i].card_order)
    columns = [[getattr(batch[i], name) for i in ordered] for name in _FIELDS]  # one array per parameter
    try:
        rows = await conn.fetch(_CALL, *columns, *_LIMITS)
    except asyncpg.PostgresError as exc:
        if is_unavailable(exc):  # the connection went: perhaps after the commit, so no second attempt here
            raise
        # The database refused the statement, so none of it was written: typically a twin with the same
        # key committed first, or two batches waited on each other. The general path answers each request
        # on its own (and one request the database refuses fails alone, not its whole batch).
        return [None] * len(batch)
    outcomes: list[idempotency.Outcome | None] = [None] * len(batch)
    for row in rows:
        if row["route"] == "posted":
            status, payload = ledger.redemption_answer(json.loads(row["posting"]))
            answer = idempotency.Outcome(status, idempotency.encode(payload), replayed=False)
            outcomes[ordered[row["item"] - 1]] = answer
    return outcomes


Waiting = tuple[QuickRedemption, "asyncio.Future[idempotency.Outcome | None]"]


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

    async def redeem(self, redemption: QuickRedemption) -> idempotency.Outcome | None:
        future: asyncio.Future[idempotency.Outcome | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((redemption, future))
        if self._senders < self._in_flight_limit:
            self._senders += 1
            task = asyncio.create_task(self._send_while_waiting())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _send_while_waiting(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._largest], self._waiting[self._largest :]
                try:
                    if conn is None:
                        conn = await acquire_within(self._pool, self._timeout)
                    outcomes = await redeem_many(conn, [redemption for redemption, _ in batch])
                except asyncio.CancelledError:  # this process is stopping
                    for _, future in batch:
                        future.cancel()
                    raise
                except Exception as exc:  # e.g. the database is unavailable: each request here says so
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if conn is not None:  # it failed mid-statement: never again, the next batch asks anew
                        conn.terminate()
                        conn = None
                else:
                    for (_, future), outcome in zip(batch, outcomes, strict=True):
                        if not future.done():  # its request may have been cancelled meanwhile
                            future.set_result(outcome)
        finally:
            # No await between the last look at the queue and this: a redemption arriving from here on
            # sees a free place and starts a sender of its own.
            self._senders -= 1
            if conn is not None:
                await self._pool.release(conn)

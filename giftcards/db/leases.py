"""Leases: work that must run once at a time across processes, and waits on another service meanwhile.

A lock held by a transaction (a row lock, an advisory lock) would hold a pooled connection, and the
transaction, for as long as that service takes to answer. A lease is a row claimed in one short statement
instead: the holder gives its connection back, does its work, writes the result in a short transaction of
its own and deletes the lease. The lease expires, so a holder that died lets go by itself; a holder's
work is bounded by its own deadline, well inside the expiry, and it re-checks what it writes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from giftcards.db.pool import Connect, is_unavailable

log = logging.getLogger("giftcards.leases")

T = TypeVar("T")

MARGIN = 30.0  # seconds a lease outlasts its holder's deadline: room for the holder's database steps
FIRST_PAUSE = 0.02  # seconds between tries while another holds the lease, doubling up to MAX_PAUSE
MAX_PAUSE = 0.25


class Busy(Exception):
    """Another holder kept the lease until the waiter's deadline."""


@dataclass(frozen=True)
class Lease:
    connect: Connect
    merchant_id: str
    name: str
    holder: uuid.UUID
    seconds: float

    async def renew(self) -> bool:
        """Push the expiry `seconds` ahead again; False when the lease lapsed and another took it."""
        async with self.connect() as conn:
            renewed = await conn.fetchval(
                """UPDATE leases SET expires_at = now() + make_interval(secs => $4)
                    WHERE merchant_id = $1 AND name = $2 AND holder = $3 RETURNING true""",
                self.merchant_id,
                self.name,
                self.holder,
                self.seconds,
            )
        return bool(renewed)

    async def release(self) -> None:
        try:
            async with self.connect() as conn:
                await conn.execute(
                    "DELETE FROM leases WHERE merchant_id = $1 AND name = $2 AND holder = $3",
                    self.merchant_id,
                    self.name,
                    self.holder,
                )
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            # Never hide the outcome of the work for this: the lease lapses at its expiry.
            log.warning("lease not released (database unavailable)", extra={"lease": self.name})


async def claim(
    conn: asyncpg.Connection, merchant_id: str, name: str, holder: uuid.UUID, seconds: float
) -> bool:
    """Take the lease if nobody holds it or its holder's expiry has passed."""
    taken = await conn.fetchval(
        """INSERT INTO leases (merchant_id, name, holder, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))
           ON CONFLICT (merchant_id, name) DO UPDATE
                 SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
               WHERE leases.expires_at <= now()
           RETURNING true""",
        merchant_id,
        name,
        holder,
        seconds,
    )
    return bool(taken)


@asynccontextmanager
async def held(
    connect: Connect, merchant_id: str, name: str, *, seconds: float, until: float
) -> AsyncIterator[Lease]:
    """The lease `name`, claimed (waiting while another holds it, up to `until` in event-loop time, then
    Busy) and released at the end. Nothing is held while waiting."""
    loop = asyncio.get_running_loop()
    holder = uuid.uuid4()
    pause = FIRST_PAUSE
    while True:
        async with connect() as conn:
            if await claim(conn, merchant_id, name, holder, seconds):
                break
        if loop.time() + pause > until:
            raise Busy(name)
        await asyncio.sleep(pause)
        pause = min(pause * 2, MAX_PAUSE)
    lease = Lease(connect, merchant_id, name, holder, seconds)
    try:
        yield lease
    finally:
        await lease.release()


async def once(
    connect: Connect,
    merchant_id: str,
    name: str,
    *,
    seconds: float,
    until: float,
    existing: Callable[[asyncpg.Connection], Awaitable[T | None]],
    make: Callable[[], Awaitable[T]],
) -> tuple[bool, T]:
    """What `existing` finds, or else what `make` makes, made by one caller at a time across processes:
    the others wait for the lease and then find what it made. Returns (made here, value)."""
    async with connect() as conn:
        found = await existing(conn)
    if found is not None:
        return False, found
    async with held(connect, merchant_id, name, seconds=seconds, until=until):
        async with connect() as conn:
            found = await existing(conn)  # made by the holder we waited for
        if found is not None:
            return False, found
        return True, await make()


async def purge(conn: asyncpg.Connection) -> int:
    """Leases whose holders died without letting go (a live holder deletes its own)."""
    result = await conn.execute("DELETE FROM leases WHERE expires_at < now() - interval '1 hour'")
    return int(result.split()[-1])

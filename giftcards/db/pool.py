"""The connection pool, and what counts as "the database is unavailable" (503, not 500)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from giftcards.config import Settings
from giftcards.observability import metrics

# A pooled connection for one short step (`async with connect() as conn:`), taken within a timeout: what
# work that waits on another service gets instead of a connection, so that it holds none while it waits.
Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]

_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
    # Raised before anything is sent when the connection is in no state to take a statement, such as a
    # pooled connection that had just received the server's "terminating connection" as the server went.
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True for failures of the connection itself, where a retry later may well succeed."""
    return isinstance(exc, _UNAVAILABLE)


async def give_back(pool: asyncpg.Pool, conn: asyncpg.Connection, failure: BaseException | None) -> None:
    """Return a connection to the pool, unless a statement on it failed at the connection level: then it
    may be mid-protocol or talking to a server that is gone, and a later caller would be answered
    "cannot switch to state …"; it is closed instead, and the pool opens a fresh one when next asked."""
    if failure is not None and is_unavailable(failure):
        discard(conn)
    else:
        await pool.release(conn)


def discard(conn: asyncpg.Connection) -> None:
    """Close a pooled connection for good; this also hands its place in the pool back. One whose server
    went away has been handed back by asyncpg already, and its proxy refuses every call: nothing to do."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


async def _nothing_to_reset(_: asyncpg.Connection) -> None:
    """The service never leaves session state on a pooled connection (no SET, LISTEN, session advisory
    lock or open cursor outside a transaction; asyncpg still rolls back an open transaction itself), so
    the default reset query, one more round trip on every release, is skipped."""


async def create_pool(settings: Settings, **overrides: Any) -> asyncpg.Pool:
    """One pool per process. Timeouts are short so an outage answers 503 fast instead of hanging."""
    options: dict[str, Any] = {
        "min_size": settings.pool_min_size,
        "max_size": settings.pool_max_size,
        "timeout": settings.db_timeout,  # connect timeout
        "command_timeout": max(settings.db_timeout * 5, 5.0),
        "max_inactive_connection_lifetime": 300.0,
        "server_settings": {"application_name": "giftcards"},
        "reset": _nothing_to_reset,
    }
    options.update(overrides)
    pool = await asyncpg.create_pool(settings.database_url, **options)
    assert pool is not None
    return pool


async def acquire_within(pool: asyncpg.Pool, timeout: float) -> asyncpg.Connection:
    """A pooled connection, or TimeoutError after `timeout` seconds, so a lost database is noticed fast and
    nothing hangs. (asyncio.timeout rather than the pool's own timeout, which starts a task per call.)"""
    with metrics.POOL_WAITING.track_inprogress():
        async with asyncio.timeout(timeout):
            conn: asyncpg.Connection = await pool.acquire()
    return conn


def connector(pool: asyncpg.Pool, timeout: float) -> Connect:
    """`Connect` on `pool`: each use waits at most `timeout` seconds for a connection (TimeoutError)."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        conn = await acquire_within(pool, timeout)
        try:
            yield conn
        finally:
            await pool.release(conn)

    return connect


def held(conn: asyncpg.Connection) -> Connect:
    """`Connect` lending a connection the caller holds already, to code that takes one only when it must."""

    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[asyncpg.Connection]:
        yield conn

    return connect

"""What to do once a transaction has committed, never before and never if it rolls back: the counters of
what it did (observability/metrics.py), which must not count a card that a later statement undid.

A step calls `after_commit(conn, action)` once its work is done. Outside a transaction that work has
committed, and `action` runs at once; inside one, it runs when the outermost transaction opened with
`transaction(conn)` commits, and is dropped with the work when that transaction, or a savepoint opened with
`transaction(conn)` around it, rolls back. So a transaction that encloses such a step is opened with
`transaction(conn)` rather than `conn.transaction()` (core/idempotency.run_once, a gift's purchase).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import asyncpg

log = logging.getLogger("giftcards.db.commits")

Action = Callable[[], None]

# The actions of each connection (by identity: a pooled connection's proxy is one object while it is lent)
# whose outermost `transaction` is open.
_pending: dict[int, list[Action]] = {}


def after_commit(conn: asyncpg.Connection, action: Action) -> None:
    if not conn.is_in_transaction():
        action()
    elif (pending := _pending.get(id(conn))) is not None:
        pending.append(action)
    else:  # a transaction this module does not see end: counted now rather than never
        log.warning("after_commit inside a transaction not opened with commits.transaction")
        action()


@contextlib.asynccontextmanager
async def transaction(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """`conn.transaction()` (a savepoint inside another) that runs or drops the actions registered in it."""
    outermost = not conn.is_in_transaction()
    if outermost:
        _pending[id(conn)] = []
    pending = _pending.get(id(conn), [])
    mark = len(pending)
    try:
        async with conn.transaction():
            yield
    except BaseException:
        del pending[mark:]
        if outermost:
            del _pending[id(conn)]
        raise
    if outermost:
        for action in _pending.pop(id(conn)):
            action()

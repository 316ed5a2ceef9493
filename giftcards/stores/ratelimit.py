"""Failed-attempt limiting: too many wrong codes from one terminal or one address, and it must wait.

Each failure is one row in `failed_attempts` for each subject it counts against, so the limit holds
across server processes and the window slides exactly: a subject is refused while it has its limit of
failures in the last WINDOW_SECONDS, and `Retry-After` says when the oldest of those leaves the window.
Only failures are counted (a busy till that scans good cards is never slowed down), and a refused attempt
is not counted again, so a subject under attack stays at about its limit of rows. It applies to terminals
and to enrollment; an API key belongs to the merchant's own servers, which look codes up on behalf of many
shops.

An address is not a merchant's: behind a balancer or a NAT every till of a shopping mall shares one. So a
till's failures count against the till (LIMIT), against its merchant at its address (ADDRESS_LIMIT) and
against the address over all merchants (PLATFORM_ADDRESS_LIMIT):

* A till stops itself after LIMIT failures, so within one window 50 tills behind one address make at most
  50 * LIMIT = 500 failures; ADDRESS_LIMIT is that, so a merchant's address counter never stops one of its
  50 tills before the till's own counter would. It binds a merchant with more failing credentials at one
  address than 50 tills could hold (an attacker with many of its tokens).
* PLATFORM_ADDRESS_LIMIT is twice that: one merchant's failures alone never reach it (they stop at
  ADDRESS_LIMIT), so no merchant, however many of its tills fail, can stop another merchant's tills at the
  same address; and 100 tills of any merchants behind one address are never stopped by it.
* Enrollment (ENROLLMENT_LIMIT) happens before anything names a merchant: the code alone is looked up, so
  its counter is the address's. A person types a code in several seconds; even ten installers enrolling
  tills at one address at once, each mistyping every code, stay far below 100 a minute. Against a 50-bit
  code that lives 15 minutes, 100 guesses a minute find it with a chance of 1,500 in 2^50 (1 in 7.5e11).

The counting itself is SQL (failure_wait, record_failure and their terminal forms,
schema/functions/failed_attempts.sql), so that
the redemption statement and the Python callers count alike; the limits are these, passed as
TERMINAL_LIMITS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from giftcards.core.errors import DomainError
from giftcards.observability import metrics
from giftcards.stores.merchants import Principal

LIMIT = 10  # failures of one terminal
ADDRESS_LIMIT = 50 * LIMIT  # of one merchant's terminals at one address
PLATFORM_ADDRESS_LIMIT = 2 * ADDRESS_LIMIT  # of every merchant's terminals at one address
ENROLLMENT_LIMIT = 100  # of enrollments from one address
WINDOW_SECONDS = 60
# terminal_failure_subjects' three counters' limits, then the window: as the SQL functions take them.
TERMINAL_LIMITS = [LIMIT, ADDRESS_LIMIT, PLATFORM_ADDRESS_LIMIT, WINDOW_SECONDS]
# What a failed lookup is, in a terminal's redemption as in its other lookups (stores/guard.py).
LOOKUP_FAILURES = frozenset({"invalid_code", "invalid_qr_payload"})
# The limits as the metrics name them: a terminal's three counters, and enrollment's.
TERMINAL = "terminal"
ENROLLMENT = "enrollment"


@dataclass(frozen=True)
class Subject:
    """A counter of failures and how many it may hold in the window."""

    name: str
    limit: int


def enrollment_subjects(client: str | None) -> list[Subject]:
    return [Subject(f"enroll:{client or 'unknown'}", ENROLLMENT_LIMIT)]


def refusal(seconds: int, limit: str) -> DomainError:
    """The answer to an attempt while `limit` (TERMINAL or ENROLLMENT) holds its subject back: a lock-out."""
    metrics.LOCKOUTS.labels(limit).inc()
    return DomainError(
        "rate_limited",
        f"too many wrong codes; try again in {seconds} seconds",
        headers={"Retry-After": str(seconds)},
        retry_after=seconds,
    )


async def check(conn: asyncpg.Connection, subjects: list[Subject]) -> None:
    """Refuse with 429 and Retry-After when any subject has reached its limit (enrollment's subjects; a
    terminal's counters have their own functions below)."""
    wait = await conn.fetchval(
        "SELECT failure_wait($1, $2, $3)",
        [s.name for s in subjects],
        [s.limit for s in subjects],
        WINDOW_SECONDS,
    )
    if wait is not None:
        raise refusal(wait, ENROLLMENT)


async def record_failure(conn: asyncpg.Connection, subjects: list[Subject]) -> None:
    await conn.execute(
        "SELECT record_failure($1, $2, $3, $4)",
        [s.name for s in subjects],
        [s.limit for s in subjects],
        [False] * len(subjects),
        WINDOW_SECONDS,
    )
    metrics.FAILED_ATTEMPTS.labels(ENROLLMENT).inc()


async def check_terminal(conn: asyncpg.Connection, terminal: Principal, client: str | None) -> None:
    """A terminal's lookups are refused while it, or its address, has failed too often."""
    wait = await _terminal_call(conn, "terminal_failure_wait", terminal, client)
    if wait is not None:
        raise refusal(wait, TERMINAL)


async def record_terminal_failure(conn: asyncpg.Connection, terminal: Principal, client: str | None) -> bool:
    """Count a failed lookup; True when it flagged the terminal (it or its address reached the limit)."""
    flagged = await _terminal_call(conn, "record_terminal_failure", terminal, client)
    metrics.FAILED_ATTEMPTS.labels(TERMINAL).inc()
    return bool(flagged)


async def _terminal_call(
    conn: asyncpg.Connection,
    function: Literal["terminal_failure_wait", "record_terminal_failure"],
    terminal: Principal,
    client: str | None,
) -> Any:
    """Both terminal-limit functions of the database take the terminal, its address and the limits."""
    return await conn.fetchval(
        f"SELECT {function}($1, $2, $3, $4)",
        terminal.merchant_id,
        terminal.id,
        client,
        TERMINAL_LIMITS,
    )


async def purge(conn: asyncpg.Connection) -> int:
    """Drop failures that no longer count (for a periodic duty)."""
    result = await conn.execute(
        "DELETE FROM failed_attempts WHERE created_at <= now() - make_interval(secs => $1)",
        WINDOW_SECONDS,
    )
    return int(result.split()[-1])

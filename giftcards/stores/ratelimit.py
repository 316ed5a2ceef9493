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

The same subjects and limits are read by the one-round-trip redemption in the database (redeem_request,
schema/0011), which gets the limits from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from giftcards.core.errors import DomainError

LIMIT = 10  # failures of one terminal
ADDRESS_LIMIT = 50 * LIMIT  # of one merchant's terminals at one address
PLATFORM_ADDRESS_LIMIT = 2 * ADDRESS_LIMIT  # of every merchant's terminals at one address
ENROLLMENT_LIMIT = 100  # of enrollments from one address
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Subject:
    """A counter of failures and how many it may hold in the window. Reaching the limit of a subject
    that `flags` flags the terminal: the platform-wide counter says nothing about one merchant's staff."""

    name: str
    limit: int
    flags: bool = True


def terminal_subjects(merchant_id: str, terminal_id: str, client: str | None) -> list[Subject]:
    """Failed card lookups count against the terminal, its merchant at its address, and the address."""
    subjects = [Subject(f"terminal:{terminal_id}", LIMIT)]
    if client:
        subjects += [
            Subject(f"address:{merchant_id}:{client}", ADDRESS_LIMIT),
            Subject(f"platform-address:{client}", PLATFORM_ADDRESS_LIMIT, flags=False),
        ]
    return subjects


def enrollment_subjects(client: str | None) -> list[Subject]:
    return [Subject(f"enroll:{client or 'unknown'}", ENROLLMENT_LIMIT, flags=False)]


async def check(conn: asyncpg.Connection, subjects: list[Subject]) -> None:
    """Refuse with 429 and Retry-After when any subject has reached its limit."""
    wait = await conn.fetchval(
        """SELECT max(ceil(extract(epoch FROM recent.created_at
                                   + make_interval(secs => $3) - now())))::int
           FROM unnest($1::text[], $2::int[]) AS s(subject, most)
           CROSS JOIN LATERAL (
               SELECT created_at FROM failed_attempts f
               WHERE f.subject = s.subject AND f.created_at > now() - make_interval(secs => $3)
               ORDER BY created_at DESC OFFSET s.most - 1 LIMIT 1) AS recent""",
        [s.name for s in subjects],
        [s.limit for s in subjects],
        WINDOW_SECONDS,
    )
    if wait is not None:
        seconds = max(1, min(int(wait), WINDOW_SECONDS))
        raise DomainError(
            "rate_limited",
            f"too many wrong codes; try again in {seconds} seconds",
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )


async def record_failure(conn: asyncpg.Connection, subjects: list[Subject]) -> bool:
    """Count one failure for each subject; True when this failure brought a flagging one to its limit."""
    names = [s.name for s in subjects]
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM failed_attempts WHERE subject = ANY($1::text[]) "
            "AND created_at <= now() - make_interval(secs => $2)",
            names,
            WINDOW_SECONDS,
        )
        await conn.execute("INSERT INTO failed_attempts (subject) SELECT unnest($1::text[])", names)
        rows = await conn.fetch(
            """SELECT subject, count(*) AS n FROM failed_attempts
               WHERE subject = ANY($1::text[]) AND created_at > now() - make_interval(secs => $2)
               GROUP BY subject""",
            names,
            WINDOW_SECONDS,
        )
    counts = {row["subject"]: row["n"] for row in rows}
    return any(s.flags and counts.get(s.name, 0) >= s.limit for s in subjects)


async def purge(conn: asyncpg.Connection) -> int:
    """Drop failures that no longer count (for a periodic duty)."""
    result = await conn.execute(
        "DELETE FROM failed_attempts WHERE created_at <= now() - make_interval(secs => $1)",
        WINDOW_SECONDS,
    )
    return int(result.split()[-1])

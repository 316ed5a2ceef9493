"""Failed-attempt limiting: too many wrong codes from one terminal or one address, and it must wait.

Each failure is one row in `failed_attempts`, so the limit holds across server processes and the window
slides exactly: a subject is refused while it has LIMIT failures in the last WINDOW_SECONDS, and
`Retry-After` says when the oldest of those leaves the window. Only failures are counted (a busy till
that scans good cards is never slowed down), and a refused attempt is not counted again, so a subject
under attack stays at about LIMIT rows. It applies to terminals and to enrollment; an API key belongs to
the merchant's own servers, which look codes up on behalf of many shops.
"""

from __future__ import annotations

import asyncpg

from giftcards.errors import DomainError

LIMIT = 10
WINDOW_SECONDS = 60


def terminal_subjects(terminal_id: str, client: str | None) -> list[str]:
    """Failed card lookups count against the terminal and against the address it calls from."""
    subjects = [f"terminal:{terminal_id}"]
    if client:
        subjects.append(f"address:{client}")
    return subjects


def enrollment_subjects(client: str | None) -> list[str]:
    return [f"enroll:{client or 'unknown'}"]


async def check(conn: asyncpg.Connection, subjects: list[str]) -> None:
    """Refuse with 429 and Retry-After when any subject has reached the limit."""
    wait = await conn.fetchval(
        """SELECT max(ceil(extract(epoch FROM recent.created_at
                                   + make_interval(secs => $2) - now())))::int
           FROM unnest($1::text[]) AS s(subject)
           CROSS JOIN LATERAL (
               SELECT created_at FROM failed_attempts f
               WHERE f.subject = s.subject AND f.created_at > now() - make_interval(secs => $2)
               ORDER BY created_at DESC OFFSET $3 - 1 LIMIT 1) AS recent""",
        subjects,
        WINDOW_SECONDS,
        LIMIT,
    )
    if wait is not None:
        seconds = max(1, min(int(wait), WINDOW_SECONDS))
        raise DomainError(
            "rate_limited",
            f"too many wrong codes; try again in {seconds} seconds",
            headers={"Retry-After": str(seconds)},
            retry_after=seconds,
        )


async def record_failure(conn: asyncpg.Connection, subjects: list[str]) -> bool:
    """Count one failure for each subject; True when this failure brought one of them to the limit."""
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM failed_attempts WHERE subject = ANY($1::text[]) "
            "AND created_at <= now() - make_interval(secs => $2)",
            subjects,
            WINDOW_SECONDS,
        )
        await conn.execute(
            "INSERT INTO failed_attempts (subject) SELECT unnest($1::text[])",
            subjects,
        )
        most = await conn.fetchval(
            """SELECT max(n) FROM (SELECT count(*) AS n FROM failed_attempts
                                   WHERE subject = ANY($1::text[])
                                     AND created_at > now() - make_interval(secs => $2)
                                   GROUP BY subject) AS counts""",
            subjects,
            WINDOW_SECONDS,
        )
    return bool(most is not None and most >= LIMIT)


async def purge(conn: asyncpg.Connection) -> int:
    """Drop failures that no longer count (for a periodic duty)."""
    result = await conn.execute(
        "DELETE FROM failed_attempts WHERE created_at <= now() - make_interval(secs => $1)",
        WINDOW_SECONDS,
    )
    return int(result.split()[-1])

"""Fetching one row by its public id.

A value that is not even an id of the expected kind answers as unknown without asking the database, so a
malformed id and a missing one look the same to the caller (who raises its own not-found error)."""

from __future__ import annotations

import asyncpg

from giftcards.core import ids


async def fetch_by_id(
    conn: asyncpg.Connection, query: str, merchant_id: str, row_id: str, prefix: str, *args: object
) -> asyncpg.Record | None:
    """The row `query` ($1 merchant, $2 id, then `args`) finds, or None (also for a value not of `prefix`)."""
    if not ids.is_id(row_id, prefix):
        return None
    return await conn.fetchrow(query, merchant_id, row_id, *args)

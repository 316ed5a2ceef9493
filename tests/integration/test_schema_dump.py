"""schema/current.sql must be what the migrations produce, so a reader can trust it."""

from __future__ import annotations

import asyncpg

from giftcards.db.migrations import migrate
from giftcards.db.schema_dump import current_schema_path, dump_schema


async def test_current_sql_is_the_schema_the_migrations_produce(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    checked_in = current_schema_path().read_text(encoding="utf-8")
    assert dump_schema(database_url) == checked_in, (
        "schema/current.sql is stale: run `python -m giftcards.cli schema-dump` and commit the result"
    )

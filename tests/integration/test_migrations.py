"""Migrations apply in order, once, under a lock; an edited file stops the service. Function files are applied
again when they change, and all of them after a migration, in the same transaction."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from giftcards.db.migrations import (
    FunctionsFile,
    Migration,
    MigrationError,
    load_functions,
    load_migrations,
    migrate,
    pending_migrations,
)


def test_files_are_numbered_without_gaps_and_ship_with_the_package() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "merchants"


async def test_two_processes_migrating_at_once_apply_each_file_once(empty_dsn: str) -> None:
    conns = [await asyncpg.connect(empty_dsn) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(conn) for conn in conns))
        assert sorted(len(r) for r in results) == [0, 0, len(load_migrations())]
        rows = await conns[0].fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in load_migrations()]
        assert await migrate(conns[0]) == []
    finally:
        for conn in conns:
            await conn.close()


async def test_an_edited_migration_is_refused_with_a_clear_message(empty_db: asyncpg.Connection) -> None:
    await migrate(empty_db)
    edited = [
        Migration(m.version, m.name, m.sql + "\n-- edited\n") if m.version == 1 else m
        for m in load_migrations()
    ]
    with pytest.raises(MigrationError, match=r"0001_merchants\.sql was edited after it was applied"):
        await migrate(empty_db, edited)
    with pytest.raises(MigrationError):
        await pending_migrations(empty_db, edited)


async def test_pending_migrations_are_reported(empty_db: asyncpg.Connection) -> None:
    assert len(await pending_migrations(empty_db, load_migrations())) == len(load_migrations())
    await migrate(empty_db)
    extra = Migration(len(load_migrations()) + 1, "later", "SELECT 1")
    assert await pending_migrations(empty_db, [*load_migrations(), extra]) == [extra]
    unknown = load_migrations()[:-1]
    with pytest.raises(MigrationError, match="does not know"):
        await pending_migrations(empty_db, unknown)


async def test_a_failing_migration_leaves_nothing_behind(empty_db: asyncpg.Connection) -> None:
    broken = [Migration(1, "broken", "CREATE TABLE half_done (id int); SELECT no_such_function();")]
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(empty_db, broken)
    assert await empty_db.fetchval("SELECT to_regclass('half_done')") is None
    assert await empty_db.fetchval("SELECT count(*) FROM schema_migrations") == 0


PROBE_V1 = FunctionsFile(
    "probe", "CREATE OR REPLACE FUNCTION probe(n integer) RETURNS integer LANGUAGE sql RETURN n;"
)
PROBE_V2 = FunctionsFile(
    "probe",
    """DROP FUNCTION IF EXISTS probe(integer);  -- the signature changes
       CREATE OR REPLACE FUNCTION probe(t text) RETURNS text LANGUAGE sql RETURN 'v2:' || t;""",
)


async def _recorded(conn: asyncpg.Connection) -> dict[str, tuple[str, object]]:
    rows = await conn.fetch("SELECT name, checksum, applied_at FROM schema_functions")
    return {row["name"]: (row["checksum"], row["applied_at"]) for row in rows}


def test_every_function_file_is_named_by_its_concept_and_replaces_what_it_defines() -> None:
    files = load_functions()
    assert {"append_only", "cards", "ledger", "redemption", "wechat_outbox"} <= {f.name for f in files}
    for file in files:
        assert "CREATE FUNCTION" not in file.sql and "CREATE TRIGGER" not in file.sql, file.name


async def test_a_changed_function_file_is_applied_again_and_only_it(empty_db: asyncpg.Connection) -> None:
    await migrate(empty_db, functions=[*load_functions(), PROBE_V1])
    assert await empty_db.fetchval("SELECT probe(7)") == 7
    before = await _recorded(empty_db)
    assert before["probe"][0] == PROBE_V1.checksum
    assert set(before) == {f.name for f in load_functions()} | {"probe"}

    assert await migrate(empty_db, functions=[*load_functions(), PROBE_V2]) == []
    assert await empty_db.fetchval("SELECT probe('x')") == "v2:x"
    assert await empty_db.fetchval("SELECT count(*) FROM pg_proc WHERE proname = 'probe'") == 1
    after = await _recorded(empty_db)
    assert after["probe"][0] == PROBE_V2.checksum and after["probe"][1] != before["probe"][1]
    assert {name: after[name] for name in before if name != "probe"} == {
        name: before[name] for name in before if name != "probe"
    }

    await migrate(empty_db)  # the file is gone: its record goes (what it made stays until a file drops it)
    assert set(await _recorded(empty_db)) == {f.name for f in load_functions()}


async def test_a_function_file_not_applied_as_it_is_makes_the_service_unready(
    empty_db: asyncpg.Connection,
) -> None:
    await migrate(empty_db, functions=[*load_functions(), PROBE_V1])
    assert await pending_migrations(empty_db, load_migrations(), [*load_functions(), PROBE_V1]) == []
    with pytest.raises(MigrationError, match=r"schema/functions/probe\.sql changed since it was applied"):
        await pending_migrations(empty_db, load_migrations(), [*load_functions(), PROBE_V2])


async def test_after_a_migration_every_function_file_is_applied_again(empty_db: asyncpg.Connection) -> None:
    """A migration may drop what a file made (here a trigger, as a rebuilt table would lose its own)."""
    await migrate(empty_db)
    dropping = Migration(
        len(load_migrations()) + 1, "drop_a_trigger", "DROP TRIGGER ledger_append_only ON ledger_entries"
    )
    assert await migrate(empty_db, [*load_migrations(), dropping]) == [dropping]
    assert (
        await empty_db.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname = 'ledger_append_only' AND NOT tgisinternal"
        )
        == 1
    )


async def test_a_failing_function_file_undoes_the_migrations_applied_with_it(
    empty_db: asyncpg.Connection,
) -> None:
    broken = FunctionsFile("zz_broken", "SELECT no_such_function();")
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(empty_db, functions=[*load_functions(), broken])
    assert await empty_db.fetchval("SELECT to_regclass('cards')") is None
    assert await empty_db.fetchval("SELECT count(*) FROM schema_migrations") == 0
    assert await empty_db.fetchval("SELECT count(*) FROM schema_functions") == 0

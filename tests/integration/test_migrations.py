"""Migrations apply in order, once, under a lock; an edited file stops the service."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from giftcards.db.migrations import Migration, MigrationError, load_migrations, migrate, pending_migrations
from tests.support.database import ThrowawayCluster


@pytest_asyncio.fixture
async def empty_dsn(cluster: ThrowawayCluster) -> AsyncIterator[str]:
    assert cluster.admin is not None
    await cluster.admin.execute("CREATE DATABASE empty_for_migrations")
    try:
        yield cluster.dsn("empty_for_migrations")
    finally:
        await cluster.admin.execute("DROP DATABASE empty_for_migrations WITH (FORCE)")


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


async def test_an_edited_migration_is_refused_with_a_clear_message(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        await migrate(conn)
        edited = [
            Migration(m.version, m.name, m.sql + "\n-- edited\n") if m.version == 1 else m
            for m in load_migrations()
        ]
        with pytest.raises(MigrationError, match=r"0001_merchants\.sql was edited after it was applied"):
            await migrate(conn, edited)
        with pytest.raises(MigrationError):
            await pending_migrations(conn, edited)
    finally:
        await conn.close()


async def test_pending_migrations_are_reported(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        assert len(await pending_migrations(conn, load_migrations())) == len(load_migrations())
        await migrate(conn)
        extra = Migration(len(load_migrations()) + 1, "later", "SELECT 1")
        assert await pending_migrations(conn, [*load_migrations(), extra]) == [extra]
        unknown = load_migrations()[:-1]
        with pytest.raises(MigrationError, match="does not know"):
            await pending_migrations(conn, unknown)
    finally:
        await conn.close()


async def test_a_failing_migration_leaves_nothing_behind(empty_dsn: str) -> None:
    conn = await asyncpg.connect(empty_dsn)
    try:
        broken = [Migration(1, "broken", "CREATE TABLE half_done (id int); SELECT no_such_function();")]
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrate(conn, broken)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()

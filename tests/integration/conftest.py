"""An empty database (nothing migrated), for the tests of the schema's own history."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from tests.support.database import ThrowawayCluster


@pytest_asyncio.fixture
async def empty_dsn(cluster: ThrowawayCluster) -> AsyncIterator[str]:
    assert cluster.admin is not None
    await cluster.admin.execute("CREATE DATABASE empty_for_migrations")
    try:
        yield cluster.dsn("empty_for_migrations")
    finally:
        await cluster.admin.execute("DROP DATABASE empty_for_migrations WITH (FORCE)")


@pytest_asyncio.fixture
async def empty_db(empty_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(empty_dsn)
    yield conn
    await conn.close()

"""The test run's own PostgreSQL: one throwaway cluster, a migrated template, a fresh copy per test."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg

from giftcards.db.embedded import EmbeddedPostgres
from giftcards.db.migrations import migrate

TEMPLATE = "giftcards_template"
# Durability is not under test here (crash tests start their own cluster with the defaults).
FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "128MB",
}


class ThrowawayCluster:
    def __init__(self, *, server_settings: dict[str, str] | None = None) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="gc-pg-"))
        self.cluster = EmbeddedPostgres(self.home, server_settings=server_settings or FAST_SETTINGS)
        self._names = itertools.count(1)
        self.admin: asyncpg.Connection | None = None

    async def start(self) -> None:
        self.cluster.start()
        self.admin = await asyncpg.connect(self.cluster.dsn)
        await self.admin.execute(f"CREATE DATABASE {TEMPLATE}")
        conn = await asyncpg.connect(self.cluster.dsn_for(TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def new_database(self) -> str:
        assert self.admin is not None
        name = f"test_{next(self._names)}"
        await self.admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return name

    async def drop_database(self, name: str) -> None:
        assert self.admin is not None
        await self.admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def dsn(self, name: str) -> str:
        return self.cluster.dsn_for(name)

    async def stop(self) -> None:
        if self.admin is not None:
            await self.admin.close()
        self.cluster.stop()
        shutil.rmtree(self.home, ignore_errors=True)

    async def __aenter__(self) -> ThrowawayCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def fresh_database(cluster: ThrowawayCluster) -> AsyncIterator[str]:
    name = await cluster.new_database()
    try:
        yield cluster.dsn(name)
    finally:
        await cluster.drop_database(name)

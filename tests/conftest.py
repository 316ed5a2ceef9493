"""Fixtures shared by the whole suite: the throwaway cluster, a fresh database per test, the live server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio

from giftcards.config import Settings
from tests.support.api import ADMIN_TOKEN, MASTER_KEY, Merchant, create_merchant
from tests.support.database import ThrowawayCluster, fresh_database
from tests.support.servers import LiveServer

ARTIFACTS = Path(os.environ.get("GIFTCARDS_TEST_ARTIFACTS", "test-artifacts"))


@pytest_asyncio.fixture(scope="session")
async def cluster() -> AsyncIterator[ThrowawayCluster]:
    async with ThrowawayCluster() as test_cluster:
        yield test_cluster


@pytest_asyncio.fixture
async def database_url(cluster: ThrowawayCluster) -> AsyncIterator[str]:
    async for dsn in fresh_database(cluster):
        yield dsn


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        home=tmp_path,
        master_key=MASTER_KEY,
        admin_token=ADMIN_TOKEN,
        pool_min_size=1,
        pool_max_size=10,
        run_worker=False,
    )


@pytest_asyncio.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, for checking what the service stored."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    live = LiveServer(settings).start()
    yield live
    live.stop()


@pytest_asyncio.fixture
async def client(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


@pytest_asyncio.fixture
async def merchant(client: httpx.AsyncClient) -> Merchant:
    return await create_merchant(client, "Maison Lumière")


@pytest_asyncio.fixture
async def other_merchant(client: httpx.AsyncClient) -> Merchant:
    return await create_merchant(client, "Other Brand")


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS

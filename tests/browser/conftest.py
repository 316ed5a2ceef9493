"""Debian's Chromium driven by Playwright (never a downloaded browser), headless, against 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.browser.shop import Shop
from tests.support.api import Merchant
from tests.support.servers import LiveServer

CHROMIUM = Path(os.environ.get("GIFTCARDS_CHROMIUM", "/usr/bin/chromium"))
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest_asyncio.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does it as root)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
def shop(
    server: LiveServer, client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection, artifacts: Path
) -> Shop:
    return Shop(server, client, merchant, db, artifacts)

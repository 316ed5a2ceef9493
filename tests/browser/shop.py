"""The shop a browser test works in, as one fixture."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx

from tests.support.api import Merchant
from tests.support.servers import LiveServer


@dataclass(frozen=True)
class Shop:
    """Everything a browser test drives besides the browser: the live service, the merchant's API client,
    a direct connection to check what was stored, and the folder the screenshots go to."""

    server: LiveServer
    client: httpx.AsyncClient
    merchant: Merchant
    db: asyncpg.Connection
    artifacts: Path

    def url(self, link: str) -> str:
        """The page a link (or a path) names, on the test's server: links carry the public base URL."""
        return self.server.url + urlsplit(link).path

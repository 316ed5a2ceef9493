"""Background duties of a serving process (and of `giftcards worker`): card expiry and key hygiene.

Each duty survives a database outage: it logs, waits and tries again, and never takes the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from giftcards import cards, idempotency
from giftcards.config import Settings
from giftcards.db.pool import create_pool, is_unavailable
from giftcards.qr_keys import QrKeys
from giftcards.runtime import Runtime
from giftcards.secrets_box import Keyring

log = logging.getLogger("giftcards.worker")

INTERVAL_SECONDS = 5.0


async def run(rt: Runtime, stop: asyncio.Event, *, interval: float = INTERVAL_SECONDS) -> None:
    while not stop.is_set():
        try:
            await run_duties(rt)
        except Exception as exc:
            if is_unavailable(exc):
                log.warning("worker: database unavailable, retrying shortly")
            else:
                log.exception("worker duty failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_duties(rt: Runtime) -> None:
    async with rt.pool.acquire() as conn:
        expired = await cards.expire_due(conn)
        purged = await idempotency.purge_expired(conn)
        await rt.qr_keys.load(conn)
    if expired or purged:
        log.info("worker pass", extra={"cards_expired": expired, "idempotency_keys_purged": purged})


@contextlib.asynccontextmanager
async def standalone_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A Runtime for a process that runs the worker alone (`giftcards worker`)."""
    pool = await create_pool(settings, min_size=1, max_size=2)
    try:
        keyring = Keyring(settings.master_key)
        qr_keys = QrKeys(keyring)
        async with pool.acquire() as conn:
            await qr_keys.load(conn)
        yield Runtime(settings, pool, keyring, qr_keys)
    finally:
        await pool.close()

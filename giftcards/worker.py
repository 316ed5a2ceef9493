"""Background duties of a serving process (and of `giftcards worker`): card expiry, unclaimed gifts
going back to their gifters, purges (idempotency keys, unused photos, failed attempts), reloading the QR
keys, and the WeChat wallet delivery loop.

Each duty survives a database outage: it logs, waits and tries again, and never takes the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from giftcards.config import Settings
from giftcards.core import idempotency
from giftcards.core.sealing import Keyring
from giftcards.db.pool import create_pool, is_unavailable
from giftcards.gifting import gift_links, images
from giftcards.qr.keys import QrKeys
from giftcards.runtime import Runtime
from giftcards.stores import ratelimit
from giftcards.value import cards
from giftcards.wallet import holders as wallet
from giftcards.wechat import outbox as wechat_outbox

log = logging.getLogger("giftcards.worker")

INTERVAL_SECONDS = 5.0


async def run(rt: Runtime, stop: asyncio.Event, *, interval: float = INTERVAL_SECONDS) -> None:
    # WeChat wallet updates have their own, faster loop (schema/functions/wechat_outbox.sql,
    # giftcards/wechat/outbox.py).
    policy = wechat_outbox.Policy(timeout=rt.settings.wechat_timeout, db_timeout=rt.settings.db_timeout)
    wechat = asyncio.create_task(wechat_outbox.run(rt.pool, rt.keyring, stop, policy, rt.wechat))
    try:
        await _run_duties_loop(rt, stop, interval)
    finally:
        stop.set()
        await wechat


async def _run_duties_loop(rt: Runtime, stop: asyncio.Event, interval: float) -> None:
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
        returned = await gift_links.return_expired(conn)  # unclaimed gifts go back to their gifters
        photos = await images.purge_unused_photos(conn)
        await ratelimit.purge(conn)
        await wallet.purge_expired_sessions(conn)
        await rt.qr_keys.load(conn)
    if expired or purged or returned or photos:
        log.info(
            "worker pass",
            extra={
                "cards_expired": expired,
                "idempotency_keys_purged": purged,
                "gifts_returned": returned,
                "unused_photos_purged": photos,
            },
        )


@contextlib.asynccontextmanager
async def standalone_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """A Runtime for a process that runs the worker alone (`giftcards worker`)."""
    pool = await create_pool(settings, min_size=1, max_size=10)  # duties, WeChat delivery lanes, tokens
    try:
        keyring = Keyring(settings.master_key)
        qr_keys = QrKeys(keyring)
        async with pool.acquire() as conn:
            await qr_keys.load(conn)
        rt = Runtime(settings, pool, keyring, qr_keys)
        try:
            yield rt
        finally:
            await rt.aclose()
    finally:
        await pool.close()

"""The ASGI application: `create_app(settings)` wires the pool, the keys, the routes and the worker."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware

from giftcards import worker
from giftcards.config import Settings, load_settings
from giftcards.core.logs import configure_logging
from giftcards.core.sealing import Keyring
from giftcards.db.migrations import MigrationError, load_migrations, pending_migrations
from giftcards.db.pool import create_pool
from giftcards.observability import metrics
from giftcards.qr.keys import QrKeys
from giftcards.runtime import Runtime
from giftcards.web import assets, system
from giftcards.web import metrics as web_metrics
from giftcards.web.api import cards as api_cards
from giftcards.web.api import designs as api_designs
from giftcards.web.api import gifts as api_gifts
from giftcards.web.api import merchants as api_merchants
from giftcards.web.api import recipients as api_recipients
from giftcards.web.api import terminals as api_terminals
from giftcards.web.api import wallet as api_wallet
from giftcards.web.api import wechat as api_wechat
from giftcards.web.middleware import RequestContextMiddleware
from giftcards.web.openapi import build_document
from giftcards.web.pages import cards as card_pages
from giftcards.web.pages import terminal as terminal_page
from giftcards.web.pages import wallet as wallet_page
from giftcards.web.pages import wechat as wechat_page
from giftcards.web.problems import EXCEPTION_HANDLERS
from giftcards.web.routing import Api

log = logging.getLogger("giftcards")


def build_api() -> Api:
    api = Api()
    for module in (
        system,
        web_metrics,
        api_merchants,
        api_cards,
        api_terminals,
        terminal_page,
        api_wechat,
        api_designs,
        api_gifts,
        api_recipients,
        card_pages,
        wechat_page,
        api_wallet,
        wallet_page,
    ):
        module.register(api)
    return api


def create_app(settings: Settings) -> Starlette:
    if not settings.database_url:
        raise ValueError("create_app needs settings.database_url (the CLI starts an embedded database)")
    api = build_api()
    migrations = load_migrations()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        pool_sampler = asyncio.create_task(metrics.sample_pool(pool))
        try:
            keyring = Keyring(settings.master_key)
            qr_keys = QrKeys(keyring)
            async with pool.acquire() as conn:
                pending = await pending_migrations(conn, migrations)
                if pending:
                    raise MigrationError(
                        f"{len(pending)} migration(s) not applied yet: run `giftcards migrate` first"
                    )
                await qr_keys.load(conn)
            app.state.runtime = Runtime(settings, pool, keyring, qr_keys)
            stop = asyncio.Event()
            task = asyncio.create_task(worker.run(app.state.runtime, stop)) if settings.run_worker else None
            metrics.process_started()
            log.info("giftcards ready")
            yield
            stop.set()
            if task is not None:
                await task
            await app.state.runtime.aclose()
        finally:
            pool_sampler.cancel()
            await pool.close()
            metrics.process_exiting()

    app = Starlette(
        routes=[*api.routes(), assets.mount()],
        middleware=[
            Middleware(web_metrics.RequestMetrics, operations=api.operations),
            Middleware(
                RequestContextMiddleware,
                max_body_bytes=settings.max_body_bytes,
                body_timeout=settings.body_timeout,
                secret_prefixes=api.secret_path_prefixes(),
            ),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.migrations = migrations
    app.state.openapi = build_document(api, server_url=settings.public_url)
    app.state.api = api
    return app


def app_from_environment() -> Starlette:
    """The uvicorn factory `giftcards serve` runs in each server process."""
    settings = load_settings(require_database=True)
    configure_logging(settings.log_level)
    app = create_app(settings)
    # What was built so far (modules, routes, templates, the OpenAPI document) lives as long as the process.
    # Frozen, the collector stops walking it in every full collection: unfrozen, each such pause took about
    # 60 ms under load and was most of the redemption's p99 (bench/README.md).
    gc.collect()
    gc.freeze()
    return app

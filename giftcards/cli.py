"""The `giftcards` command: serve, migrate, worker, audit, and the few admin chores a platform needs.

Without DATABASE_URL every command uses the embedded PostgreSQL in $GIFTCARDS_HOME (default
./.giftcards), starting it when needed; `serve` stops it again on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg

from giftcards.config import ConfigError, Settings, ensure_local_master_key, load_settings, new_master_key
from giftcards.core.errors import DomainError
from giftcards.core.logs import configure_logging
from giftcards.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from giftcards.db.migrations import MigrationError, migrate
from giftcards.db.schema_dump import current_schema_path, dump_schema

log = logging.getLogger("giftcards.cli")

EMBEDDED_SERVER_SETTINGS = {"max_connections": "200", "shared_buffers": "256MB"}


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        sys.exit(2)
    if args.command == "new-master-key":
        print(new_master_key())
        return
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    try:
        sys.exit(args.func(settings, args) or 0)
    except (MigrationError, EmbeddedPostgresError, DomainError) as exc:
        print(f"giftcards: {exc}", file=sys.stderr)
        sys.exit(1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="giftcards", description="Digital gift cards and a card wallet.")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the HTTP service (embedded database unless DATABASE_URL)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="server processes (see bench/README.md)")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply pending migrations and exit").set_defaults(func=cmd_migrate)
    sub.add_parser(
        "schema-dump", help="migrate the database, then rewrite schema/current.sql from it"
    ).set_defaults(func=cmd_schema_dump)
    sub.add_parser("worker", help="run the background worker on its own").set_defaults(func=cmd_worker)
    sub.add_parser(
        "audit", help="check every balance against its ledger; exit 1 on any mismatch"
    ).set_defaults(func=cmd_audit)
    sub.add_parser("expire", help="write expiry entries for cards past their date, once").set_defaults(
        func=cmd_expire
    )
    sub.add_parser("new-master-key", help="print a new random master key")
    merchant = sub.add_parser("create-merchant", help="create a merchant and print its first API key")
    merchant.add_argument("name")
    merchant.set_defaults(func=cmd_create_merchant)
    keys = sub.add_parser("qr-keys", help="list, rotate or retire the QR signing keys")
    keys.add_argument("action", choices=["list", "rotate", "retire"])
    keys.add_argument("kid", nargs="?")
    keys.set_defaults(func=cmd_qr_keys)
    return parser


@contextlib.contextmanager
def database(settings: Settings) -> Iterator[Settings]:
    """Settings with a database: DATABASE_URL as given, or the embedded cluster (stopped again if we
    started it)."""
    if settings.database_url:
        yield settings
        return
    settings = ensure_local_master_key(settings)
    cluster = EmbeddedPostgres(settings.home, server_settings=EMBEDDED_SERVER_SETTINGS)
    dsn = cluster.start()
    try:
        yield settings.with_database(dsn)
    finally:
        if cluster.started_here:
            cluster.stop()


@contextlib.asynccontextmanager
async def _connection(settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    """One connection for a command's work, closed however the work ends."""
    conn = await asyncpg.connect(settings.database_url, timeout=10)
    try:
        yield conn
    finally:
        await conn.close()


async def apply_migrations(settings: Settings) -> int:
    async with _connection(settings) as conn:
        applied = await migrate(conn)
    for migration in applied:
        log.info("applied migration", extra={"version": migration.version, "migration": migration.name})
    return len(applied)


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    with database(settings) as ready:
        count = asyncio.run(apply_migrations(ready))
    print(f"{count} migration(s) applied")
    return 0


def cmd_schema_dump(settings: Settings, _: argparse.Namespace) -> int:
    with database(settings) as ready:
        asyncio.run(apply_migrations(ready))
        path = current_schema_path()
        assert ready.database_url is not None  # database() always provides one
        path.write_text(dump_schema(ready.database_url), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    with database(settings) as ready:
        asyncio.run(apply_migrations(ready))
        # The server processes read their settings from the environment, like any other deployment.
        os.environ["DATABASE_URL"] = ready.database_url or ""
        os.environ["GIFTCARDS_MASTER_KEY"] = base64.urlsafe_b64encode(ready.master_key).decode().rstrip("=")
        # uvicorn finishes in-flight requests on SIGTERM/SIGINT and then re-raises the signal; turn that
        # into a normal exit so the embedded database below is shut down cleanly too.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        signal.signal(signal.SIGINT, _exit_cleanly)
        with metrics_directory():
            uvicorn.run(
                "giftcards.app:app_from_environment",
                factory=True,
                host=args.host,
                port=args.port,
                workers=args.workers,
                log_config=None,
                timeout_graceful_shutdown=20,
                access_log=False,
                **uvicorn_proxy_options(ready),
            )
    return 0


@contextlib.contextmanager
def metrics_directory() -> Iterator[None]:
    """A fresh PROMETHEUS_MULTIPROC_DIR for this start's server processes, removed when they have stopped:
    each writes its metrics there and /metrics adds them all up (observability/metrics.py), with one
    process as with several. Set before any of them imports prometheus-client, which reads it then."""
    with tempfile.TemporaryDirectory(prefix="giftcards-metrics-") as directory:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        try:
            yield
        finally:
            del os.environ["PROMETHEUS_MULTIPROC_DIR"]


def uvicorn_proxy_options(settings: Settings) -> dict[str, Any]:
    """Whom uvicorn believes about the client's address. uvicorn's own default believes X-Forwarded-For
    from 127.0.0.1, so any local process could forge the address the failed-attempt limits and the staff
    log see; here it is believed only from GIFTCARDS_TRUSTED_PROXIES, and by default from nobody."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def _exit_cleanly(*_: object) -> None:
    raise SystemExit(0)


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    from giftcards import worker

    async def run(ready: Settings) -> None:
        async with worker.standalone_runtime(ready) as rt:
            await worker.run(rt, asyncio.Event())

    with database(settings) as ready, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(ready))
    return 0


def cmd_audit(settings: Settings, _: argparse.Namespace) -> int:
    from giftcards.value.audit import audit_balances

    async def run(ready: Settings) -> int:
        async with _connection(ready) as conn:
            report = await audit_balances(conn)
        print(report.summary())
        return 0 if report.ok else 1

    with database(settings) as ready:
        return asyncio.run(run(ready))


def cmd_expire(settings: Settings, _: argparse.Namespace) -> int:
    from giftcards.value import cards

    async def run(ready: Settings) -> int:
        async with _connection(ready) as conn:
            total = 0
            while count := await cards.expire_due(conn):
                total += count
            return total

    with database(settings) as ready:
        print(f"{asyncio.run(run(ready))} card(s) expired")
    return 0


def cmd_create_merchant(settings: Settings, args: argparse.Namespace) -> int:
    from giftcards.core.sealing import Keyring
    from giftcards.stores.merchants import create_merchant
    from giftcards.stores.shapes import NewMerchant

    async def run(ready: Settings) -> NewMerchant:
        async with _connection(ready) as conn:
            return await create_merchant(conn, Keyring(ready.master_key), name=args.name)

    with database(settings) as ready:
        asyncio.run(apply_migrations(ready))
        merchant = asyncio.run(run(ready))
    key = merchant.api_key
    print(f"merchant {merchant.id} ({merchant.name})")
    print(f"API key  {key.secret}   (shown once: keep it safe)")
    return 0


def cmd_qr_keys(settings: Settings, args: argparse.Namespace) -> int:
    from giftcards.core.sealing import Keyring
    from giftcards.qr import keys as qr_keys

    async def run(ready: Settings) -> None:
        async with _connection(ready) as conn:
            if args.action == "rotate":
                print(f"now signing with {await qr_keys.rotate(conn, Keyring(ready.master_key))}")
            elif args.action == "retire":
                if not args.kid:
                    raise SystemExit("giftcards qr-keys retire KID")
                await qr_keys.retire(conn, args.kid)
                print(f"retired {args.kid}")
            for key in await qr_keys.list_keys(conn):
                print(f"{key.kid}  {key.state:<12} created {key.created_at}")

    with database(settings) as ready:
        asyncio.run(run(ready))
    return 0


if __name__ == "__main__":
    main()

"""Forward-only SQL migrations: `schema/NNNN_name.sql`, applied in order, each in its own transaction.

`schema/current.sql` is not a migration: it is the resulting schema, dumped for readers (`schema_dump.py`).

Every applied file is recorded with its SHA-256; a file edited after it was applied stops the service
(a schema that differs from its history is worse than no service). An advisory lock makes concurrent
starts apply each migration exactly once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_ID = 0x6769667463617264  # "giftcard": one advisory lock id for the whole migration step


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def schema_dir() -> Path:
    """Inside an installed package the files live in giftcards/schema; in a checkout, in ./schema."""
    package_root = Path(__file__).resolve().parent.parent
    for candidate in (package_root / "schema", package_root.parent / "schema"):
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no schema directory found next to {package_root}")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    directory = directory or schema_dir()
    migrations = []
    for path in sorted(directory.glob("[0-9]*.sql")):
        match = _FILE_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3… without gaps; found {versions}")
    return migrations


_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is pending and return it; refuse when history and files disagree."""
    migrations = load_migrations() if migrations is None else migrations
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(_CREATE_HISTORY)
        applied = await _applied(conn)
        check_history(applied, migrations)
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
        return pending
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


async def pending_migrations(conn: asyncpg.Connection, migrations: list[Migration]) -> list[Migration]:
    """What is not applied yet (for /readyz); raises MigrationError when history and files disagree."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = await _applied(conn) if exists else {}
    check_history(applied, migrations)
    return [m for m in migrations if m.version not in applied]


def check_history(applied: dict[int, tuple[str, str]], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name} which this code does not know: "
                "is this an older version of the service?"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"schema/{version:04d}_{migration.name}.sql was edited after it was applied "
                f"(recorded sha256 {checksum[:12]}…, file now {migration.checksum[:12]}…); "
                "restore the file and add a new migration instead"
            )


async def _applied(conn: asyncpg.Connection) -> dict[int, tuple[str, str]]:
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {row["version"]: (row["name"], row["checksum"]) for row in rows}

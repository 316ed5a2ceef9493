"""The schema from its two kinds of source, applied under one advisory lock and in one transaction.

* `schema/migrations/NNNN_verb_noun.sql`: forward-only, for tables, constraints, indexes and data. Each is
  applied once and recorded with its SHA-256; a file edited after it was applied stops the service (a
  schema that differs from its history is worse than no service), unless the file names the checksum it
  was applied with (`-- was sha256 <hex>`), as the migrations do whose functions moved out.
* `schema/functions/*.sql`: every function and trigger as it is now, written to be applied again (CREATE
  OR REPLACE). A file is applied, in name order, when its checksum differs from the one recorded; after a
  migration every file is, since a migration may drop what a file made (a table and its triggers).

Migrations never call what `schema/functions/` defines: on a new database it comes after them.
`schema/current.sql` is the result, dumped for readers (`schema_dump.py`).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_FUNCTIONS_NAME = re.compile(r"^([a-z0-9_]+)\.sql$")
_FORMER_CHECKSUM = re.compile(r"^-- was sha256 ([0-9a-f]{64})$", re.MULTILINE)
_LOCK_ID = 0x6769667463617264  # "giftcard": one advisory lock id for the whole migration step

log = logging.getLogger("giftcards.migrations")


class MigrationError(RuntimeError):
    pass


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return _sha256(self.sql)

    @property
    def accepted_checksums(self) -> set[str]:
        """This file's checksum, and those it says it was applied with before it was rewritten."""
        return {self.checksum, *_FORMER_CHECKSUM.findall(self.sql)}

    @property
    def has_statements(self) -> bool:
        """False for a file that is only comments now (what it did moved to schema/functions/)."""
        return any(line.strip() and not line.lstrip().startswith("--") for line in self.sql.splitlines())


@dataclass(frozen=True)
class FunctionsFile:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return _sha256(self.sql)


def schema_dir() -> Path:
    """Inside an installed package the files live in giftcards/schema; in a checkout, in ./schema."""
    package_root = Path(__file__).resolve().parent.parent
    for candidate in (package_root / "schema", package_root.parent / "schema"):
        if candidate.is_dir():
            return candidate
    raise MigrationError(f"no schema directory found next to {package_root}")


def load_migrations(directory: Path | None = None) -> list[Migration]:
    files = _sql_files(directory or schema_dir() / "migrations", _MIGRATION_NAME, "NNNN_verb_noun.sql")
    migrations = [Migration(int(name[1]), name[2], sql) for name, sql in files]
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1, 2, 3… without gaps; found {versions}")
    return migrations


def load_functions(directory: Path | None = None) -> list[FunctionsFile]:
    files = _sql_files(directory or schema_dir() / "functions", _FUNCTIONS_NAME, "concept.sql")
    return [FunctionsFile(name[1], sql) for name, sql in files]


def _sql_files(directory: Path, shape: re.Pattern[str], spelt: str) -> list[tuple[re.Match[str], str]]:
    """The .sql files of `directory` in name order, each with its name matched against `shape`."""
    files = []
    for path in sorted(directory.glob("*.sql")):
        name = shape.match(path.name)
        if name is None:
            raise MigrationError(f"{path.name}: the files in {directory.name}/ are named {spelt}")
        files.append((name, path.read_text(encoding="utf-8")))
    return files


_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS schema_functions (
    name        text PRIMARY KEY,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""


async def migrate(
    conn: asyncpg.Connection,
    migrations: list[Migration] | None = None,
    functions: list[FunctionsFile] | None = None,
) -> list[Migration]:
    """Apply the pending migrations, then the function files that changed; return the migrations applied.
    Refuse when history and files disagree. All or nothing: one transaction."""
    migrations = load_migrations() if migrations is None else migrations
    functions = load_functions() if functions is None else functions
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(_CREATE_HISTORY)
        async with conn.transaction():
            applied = await _applied(conn)
            check_history(applied, migrations)
            pending = [m for m in migrations if m.version not in applied]
            for migration in pending:
                if migration.has_statements:  # asyncpg cannot run a text of comments alone
                    await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            stale = functions if pending else await _stale_functions(conn, functions)
            for file in stale:
                await conn.execute(file.sql)
                await conn.execute(
                    """INSERT INTO schema_functions (name, checksum) VALUES ($1, $2)
                       ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()""",
                    file.name,
                    file.checksum,
                )
            await conn.execute(
                "DELETE FROM schema_functions WHERE name <> ALL($1::text[])", [f.name for f in functions]
            )
        for file in stale:
            log.info("applied functions", extra={"functions": f"schema/functions/{file.name}.sql"})
        return pending
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)


async def pending_migrations(
    conn: asyncpg.Connection, migrations: list[Migration], functions: list[FunctionsFile] | None = None
) -> list[Migration]:
    """What is not applied yet (for /readyz); raises MigrationError when history and files disagree, or
    when no migration is pending but a function file is not applied as it is now."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = await _applied(conn) if exists else {}
    check_history(applied, migrations)
    pending = [m for m in migrations if m.version not in applied]
    if not pending:
        stale = await _stale_functions(conn, load_functions() if functions is None else functions)
        if stale:
            names = ", ".join(f"schema/functions/{f.name}.sql" for f in stale)
            raise MigrationError(f"{names} changed since it was applied: run `giftcards migrate`")
    return pending


def check_history(applied: dict[int, tuple[str, str]], migrations: list[Migration]) -> None:
    known = {m.version: m for m in migrations}
    for version, (name, checksum) in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name} which this code does not know: "
                "is this an older version of the service?"
            )
        if checksum not in migration.accepted_checksums:
            raise MigrationError(
                f"schema/migrations/{version:04d}_{migration.name}.sql was edited after it was applied "
                f"(recorded sha256 {checksum[:12]}…, file now {migration.checksum[:12]}…); "
                "restore the file and add a new migration instead"
            )


async def _applied(conn: asyncpg.Connection) -> dict[int, tuple[str, str]]:
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
    return {row["version"]: (row["name"], row["checksum"]) for row in rows}


async def _stale_functions(conn: asyncpg.Connection, functions: list[FunctionsFile]) -> list[FunctionsFile]:
    exists = await conn.fetchval("SELECT to_regclass('schema_functions') IS NOT NULL")
    rows = await conn.fetch("SELECT name, checksum FROM schema_functions") if exists else []
    recorded = {row["name"]: row["checksum"] for row in rows}
    return [f for f in functions if recorded.get(f.name) != f.checksum]

"""`schema/current.sql`: the whole schema as the migrations leave it, readable in one place.

Written by pg_dump (from the same binaries the embedded cluster uses) from a migrated database, with
the lines that change from run to run removed, so a stale file shows as a diff in review and in
`tests/integration/test_schema_dump.py`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from giftcards.db.embedded import find_server_binaries
from giftcards.db.migrations import schema_dir


def current_schema_path() -> Path:
    return schema_dir() / "current.sql"


def dump_schema(dsn: str) -> str:
    """The schema of the database at `dsn`, without owners, grants or pg_dump's per-run lines."""
    result = subprocess.run(
        [
            str(find_server_binaries() / "pg_dump"),
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--dbname",
            dsn,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
    )
    # \restrict/\unrestrict carry a random key; the version comments name the binaries, not the schema.
    kept = [
        line
        for line in result.stdout.splitlines()
        if not line.startswith(("\\restrict", "\\unrestrict", "-- Dumped from", "-- Dumped by"))
    ]
    return "\n".join(kept).strip() + "\n"

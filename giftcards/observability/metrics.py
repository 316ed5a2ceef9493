"""The service's Prometheus metrics: each defined once here, counted where the thing happens, and exposed
by the HTTP layer (web/metrics.py) in Prometheus' text format.

`giftcards serve` gives its server processes a fresh PROMETHEUS_MULTIPROC_DIR (cli.cmd_serve): each process
writes its samples to files there, and a scrape answered by any process adds them all up (prometheus-client's
multiprocess mode), one process as well as several. The variable is read once, when prometheus-client is
first imported, so it must be set before that. Without it (a test's in-process server, `giftcards worker`)
the process exposes its own registry.

Labels take bounded values only: an operation's id (never a path: paths carry ids and secret tokens), a
status, an outcome, a failure limit's name, a currency code, an outbox's name.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager

import asyncpg
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

log = logging.getLogger("giftcards.metrics")

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

REQUEST_SECONDS = Histogram(
    "giftcards_http_request_duration_seconds",
    "Time to answer an HTTP request, by operation (its operationId) and status; _count counts the requests",
    ["operation", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REDEMPTION_BATCH_SIZE = Histogram(
    "giftcards_redemption_batch_size",
    "Till redemptions sent to the database together, in one statement (value/redemption.py Batcher)",
    buckets=(1, 2, 4, 8, 16, 32),
)
REDEMPTIONS = Counter(
    "giftcards_redemptions",
    "Redemptions answered, by outcome: ok, or the refusal's code (replays answer their first outcome)",
    ["outcome"],
)
REDEEMED = Counter(
    "giftcards_redeemed_minor_units",
    "Value redeemed from cards, in minor units, by currency (committed; replays not counted again)",
    ["currency"],
)
CARDS_ISSUED = Counter(
    "giftcards_cards_issued", "Cards issued: one at a time, in batches, or bought as gifts"
)
GIFTS_CLAIMED = Counter("giftcards_gifts_claimed", "Gifts claimed by their recipients")
FAILED_ATTEMPTS = Counter(
    "giftcards_failed_attempts",
    "Wrong codes counted against a failure limit (stores/ratelimit.py): terminal or enrollment",
    ["limit"],
)
LOCKOUTS = Counter(
    "giftcards_lockouts",
    "Attempts refused (429) because a failure limit was reached: terminal or enrollment",
    ["limit"],
)
SERVER_PROCESSES = Gauge(
    "giftcards_server_processes",
    "Server processes serving: each counts itself, and one that ended is forgotten (mark_process_dead)",
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "giftcards_db_pool_in_use",
    "Pooled database connections taken, over the server processes (sampled every second)",
    multiprocess_mode="livesum",
)
POOL_WAITING = Gauge(
    "giftcards_db_pool_waiting",
    "Requests and redemption batches waiting for a pooled database connection, over the server processes",
    multiprocess_mode="livesum",
)
POOL_SAMPLE_SECONDS = 1.0

# The outboxes whose depth and oldest message a scrape reports. Each is a table whose rows wait in state
# 'pending' until delivered and are 'parked' when given up on, with `created_at`: a new outbox (webhooks,
# payments) is one more line here.
OUTBOXES = {
    "wechat": "wechat_outbox",
}
OUTBOX_TIMEOUT = 1.0  # seconds to get a connection, and again for the query: a slow database slows no scrape
_OUTBOX_DEPTHS = " UNION ALL ".join(
    # Built from the constants above only; no value of a request comes near it.
    f"""SELECT '{name}' AS outbox,
               count(*) FILTER (WHERE state = 'pending') AS pending,
               count(*) FILTER (WHERE state = 'parked') AS parked,
               extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending'))::float8 AS oldest
          FROM {table} WHERE state IN ('pending', 'parked')"""  # noqa: S608
    for name, table in OUTBOXES.items()
)

Connect = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]


async def sample_pool(pool: asyncpg.Pool) -> None:
    """Keep POOL_IN_USE at this process's count, until cancelled (the process's lifespan runs it)."""
    while True:
        POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
        await asyncio.sleep(POOL_SAMPLE_SECONDS)


def process_started() -> None:
    SERVER_PROCESSES.set(1)


def process_exiting() -> None:
    """This process's gauges stop counting in the sums (mark_process_dead); its counters still add up."""
    SERVER_PROCESSES.set(0)
    if MULTIPROCESS_DIR:
        mark_process_dead(os.getpid(), MULTIPROCESS_DIR)


async def exposition(connect: Connect) -> bytes:
    """Every metric in Prometheus' text format: the processes' samples, then the outboxes as they are now."""
    outboxes = await _outbox_families(connect)
    processes = await asyncio.to_thread(_process_samples)  # files to read: the event loop goes on meanwhile
    return processes + generate_latest(_Families(outboxes))


def _process_samples() -> bytes:
    if not MULTIPROCESS_DIR:
        return generate_latest(REGISTRY)
    _forget_exited_processes(MULTIPROCESS_DIR)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
    return generate_latest(registry)


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")


def _forget_exited_processes(directory: str) -> None:
    """mark_process_dead for server processes that ended without saying so (killed), whose replacement
    uvicorn started: their gauges would otherwise stay in the sums."""
    pids = {int(m[1]) for name in os.listdir(directory) if (m := _LIVE_GAUGE_FILE.match(name))}
    for pid in pids - {os.getpid()}:
        if not _alive(pid):
            mark_process_dead(pid, directory)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _outbox_families(connect: Connect) -> list[Metric]:
    ok = GaugeMetricFamily(
        "giftcards_outbox_query_ok", "1 when the outboxes below could be read for this scrape, else 0"
    )
    depth = GaugeMetricFamily(
        "giftcards_outbox_depth",
        "Messages waiting in an outbox, by state: pending or parked",
        labels=["outbox", "state"],
    )
    oldest = GaugeMetricFamily(
        "giftcards_outbox_oldest_age_seconds",
        "Age of the oldest pending message of an outbox (0 when none waits)",
        labels=["outbox"],
    )
    try:
        async with connect() as conn:
            rows = await conn.fetch(_OUTBOX_DEPTHS, timeout=OUTBOX_TIMEOUT)
    except Exception as exc:  # any failure: the scrape still answers, without the outboxes
        log.warning("outbox depths unavailable: %s", type(exc).__name__)
        ok.add_metric([], 0)
        return [ok]
    ok.add_metric([], 1)
    for row in rows:
        depth.add_metric([row["outbox"], "pending"], row["pending"])
        depth.add_metric([row["outbox"], "parked"], row["parked"])
        oldest.add_metric([row["outbox"]], row["oldest"] or 0.0)
    return [ok, depth, oldest]


class _Families(CollectorRegistry):
    """A registry of metric families computed for one scrape."""

    def __init__(self, families: list[Metric]) -> None:
        super().__init__(auto_describe=False)
        self._families = families

    def collect(self) -> Iterator[Metric]:
        yield from self._families

"""The yardstick the issue measures the service against, rebuilt here so it runs in the same bench run on
the same machine: a bare Starlette + asyncpg endpoint doing a redemption-shaped transaction (lock the card
row, update it, append a ledger row) and nothing else: no credential, no signature, no idempotency key,
no staff log, no triggers or constraints beyond two primary keys.

It serves that transaction twice over, from two pools: `POST /redeem` through asyncpg's default pool, as
the issue's yardstick was built, which resets each connection on release (one more round trip per
request), and `POST /redeem/no_reset` through a pool that skips the reset, as giftcards' own pool does.
`GET /` answers a small JSON document without touching the database: the machine's plain HTTP figure,
which shared/PERF.md gives for the machine the targets were set on.

`python -m uvicorn bench.bare_app:app --port 8766` with BENCH_BARE_DSN set; bench.run starts it as its own
process and creates its two tables (see `TABLES`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

TABLES = """
CREATE TABLE bare_cards (id integer PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE bare_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, card_id integer NOT NULL,
                          amount bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO bare_cards SELECT n, 100000000 FROM generate_series(1, $cards) AS n;
"""

# The same transaction for pgbench (the database's own figure for it).
PGBENCH_SCRIPT = """
\\set n random(1, $cards)
BEGIN;
SELECT balance FROM bare_cards WHERE id = :n FOR UPDATE;
UPDATE bare_cards SET balance = balance - 1 WHERE id = :n;
INSERT INTO bare_ledger (card_id, amount) VALUES (:n, -1);
COMMIT;
"""


async def _redeem(request: Request, pool: asyncpg.Pool) -> Response:
    body = json.loads(await request.body())
    card, amount = int(body["card"]), int(body["amount"])
    async with pool.acquire() as conn, conn.transaction():
        balance = await conn.fetchval("SELECT balance FROM bare_cards WHERE id = $1 FOR UPDATE", card)
        await conn.execute("UPDATE bare_cards SET balance = balance - $2 WHERE id = $1", card, amount)
        await conn.execute("INSERT INTO bare_ledger (card_id, amount) VALUES ($1, $2)", card, -amount)
    answer = json.dumps({"card": card, "balance": balance - amount})
    return Response(answer, 201, media_type="application/json")


async def redeem(request: Request) -> Response:
    return await _redeem(request, request.app.state.pool)


async def redeem_no_reset(request: Request) -> Response:
    return await _redeem(request, request.app.state.pool_no_reset)


async def hello(request: Request) -> Response:
    return Response('{"hello":"world"}', media_type="application/json")


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """The transaction above leaves no session state behind, so the reset has nothing to undo."""


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    dsn = os.environ["BENCH_BARE_DSN"]
    app.state.pool = await asyncpg.create_pool(dsn, min_size=8, max_size=8)
    app.state.pool_no_reset = await asyncpg.create_pool(dsn, min_size=8, max_size=8, reset=_nothing_to_reset)
    yield
    await app.state.pool_no_reset.close()
    await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/", hello),
        Route("/redeem", redeem, methods=["POST"]),
        Route("/redeem/no_reset", redeem_no_reset, methods=["POST"]),
    ],
    lifespan=lifespan,
)

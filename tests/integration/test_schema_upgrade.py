"""A database made by the schema as it was at ab299df (migrations 0001..0013, their functions inside them),
with data in it, migrates forward with today's runner: nothing is lost, the card still redeems through the
API, and the schema is the one a new database gets.

fixtures/migrations_at_ab299df.tar.gz holds those thirteen files as they were applied; each one's sha256 is
checked against what today's file of the same number accepts, which is what an existing database's
schema_migrations holds. The data is written in SQL and through the old functions, not by today's Python.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import asyncpg
import httpx

from giftcards.config import Settings
from giftcards.core.idempotency import request_fingerprint
from giftcards.core.sealing import Keyring
from giftcards.db.migrations import Migration, load_migrations, migrate
from giftcards.db.schema_dump import dump_schema
from giftcards.value.codes import check_symbol, format_code
from tests.support.api import MASTER_KEY
from tests.support.servers import LiveServer

HISTORY = Path(__file__).parent / "fixtures" / "migrations_at_ab299df.tar.gz"
KEYRING = Keyring(MASTER_KEY)
MERCHANT = "mer_" + "a" * 16
API_KEY = f"gk_{MERCHANT}_upgrade0123456789abcdefghij"
TERMINAL_TOKEN = f"gt_{MERCHANT}_upgrade0123456789abcdefghij"
STORE, TERMINAL, DESIGN = "store_" + "a" * 16, "term_" + "a" * 16, "dsn_" + "a" * 16
CARD_A, CARD_B = "card_" + "a" * 16, "card_" + "b" * 16
CODES = {
    card: body + check_symbol(body)
    for card, body in (("a", "23456789ABCDEFGHJKL"), ("b", "3456789ABCDEFGHJKLM"))
}
RETRIED = {"code": format_code(CODES["a"]), "amount": 300}  # redeemed before the upgrade, retried after


def historical_migrations() -> list[Migration]:
    with tarfile.open(HISTORY) as archive:
        files = sorted((m for m in archive.getmembers() if m.isfile()), key=lambda m: m.name)
        texts = [(m.name, archive.extractfile(m).read().decode()) for m in files]  # type: ignore[union-attr]
    return [Migration(int(name[:4]), name[5:-4], sql) for name, sql in texts]


def test_every_recorded_migration_is_accepted_by_todays_file_of_its_number() -> None:
    today = {m.version: m for m in load_migrations()}
    history = historical_migrations()
    assert [m.version for m in history] == list(range(1, 14))
    for old in history:
        assert old.name == today[old.version].name
        assert old.checksum in today[old.version].accepted_checksums, old.name


async def write_data_as_at_ab299df(conn: asyncpg.Connection) -> None:
    """A merchant with its key, a store with a limit and its terminal, a design, two cards with their
    ledgers, a redemption by key with an idempotency key and one by terminal, a gift, a customise session."""
    rows = [
        ("INSERT INTO merchants (id, name) VALUES ($1, 'Before the upgrade')", MERCHANT),
        (
            "INSERT INTO api_keys (merchant_id, id, token_hash, token_last4) VALUES ($1, 'key_1', $2, $3)",
            MERCHANT,
            KEYRING.token_hash(API_KEY),
            API_KEY[-4:],
        ),
        (
            "INSERT INTO stores (merchant_id, id, name, redeem_limit) VALUES ($1, $2, 'Till', 50000)",
            MERCHANT,
            STORE,
        ),
        (
            """INSERT INTO terminals (merchant_id, id, store_id, label, role, token_hash, token_last4,
                                      enrolled_at)
               VALUES ($1, $2, $3, 'Front', 'clerk', $4, $5, now())""",
            MERCHANT,
            TERMINAL,
            STORE,
            KEYRING.token_hash(TERMINAL_TOKEN),
            TERMINAL_TOKEN[-4:],
        ),
        (
            """INSERT INTO designs (merchant_id, id, name, occasion, background_color, accent_color,
                                    text_color, currency, denominations, min_amount, max_amount)
               VALUES ($1, $2, 'Qixi', 'qixi', '#aa0000', '#ffffff', '#000000', 'CNY', '{5000,10000}',
                       100, 100000000)""",
            MERCHANT,
            DESIGN,
        ),
        (
            """INSERT INTO customise_sessions (merchant_id, id, token_hash, api_key_id, owner_id, currency,
                                               max_amount, expires_at)
               VALUES ($1, 'cus_' || repeat('a', 16), $2, 'key_1', 'o-gifter', 'CNY', 20000,
                       now() + interval '1 hour')""",
            MERCHANT,
            bytes(range(32)),
        ),
    ]
    for sql, *args in rows:
        await conn.execute(sql, *args)
    for card_id, code, amount in ((CARD_A, CODES["a"], 10_000), (CARD_B, CODES["b"], 25_000)):
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO cards (merchant_id, id, code_hash, code_sealed, code_last4, currency,
                                      initial_amount, balance, state, owner_id)
                   VALUES ($1, $2, $3, $4, $5, 'CNY', $6, $6, 'active', 'o-gifter')""",
                MERCHANT,
                card_id,
                KEYRING.code_hash(code),
                KEYRING.box.seal(code.encode(), context=b"card-code:" + card_id.encode()),
                code[-4:],
                amount,
            )
            await conn.execute(
                """INSERT INTO ledger_entries (merchant_id, card_id, kind, amount, balance_after, currency,
                                               actor_type)
                   VALUES ($1, $2, 'issue', $3, $3, 'CNY', 'api_key')""",
                MERCHANT,
                card_id,
                amount,
            )
    # The one-round-trip redemption of ab299df: by card id with an idempotency key, and by code at a till.
    by_key = await conn.fetchrow(
        """SELECT * FROM redeem_request('api_key', $1, $2, '127.0.0.1', 'till-1-sale-7', $3, NULL, $4, NULL,
                                        NULL, NULL, 2500, 'CNY', false, 'sale 7', 10, 20, 50, 300)""",
        MERCHANT,
        KEYRING.token_hash(API_KEY),
        bytes(32),
        CARD_A,
    )
    by_terminal = await conn.fetchrow(
        """SELECT * FROM redeem_request('terminal', $1, $2, '10.0.0.9', NULL, NULL, NULL, NULL, NULL, $3,
                                        $4, 1200, 'CNY', false, NULL, 10, 20, 50, 300)""",
        MERCHANT,
        KEYRING.token_hash(TERMINAL_TOKEN),
        KEYRING.code_hash(CODES["b"]),
        CODES["b"][-4:],
    )
    # And by code with a key, as a retry over the API after the upgrade will send it again.
    by_code = await conn.fetchrow(
        """SELECT * FROM redeem_request('api_key', $1, $2, '127.0.0.1', 'till-1-sale-8', $3, NULL, NULL, NULL,
                                        $4, $5, 300, NULL, false, NULL, 10, 20, 50, 300)""",
        MERCHANT,
        KEYRING.token_hash(API_KEY),
        request_fingerprint("POST", "/v1/redemptions", RETRIED),
        KEYRING.code_hash(CODES["a"]),
        CODES["a"][-4:],
    )
    assert (by_key["route"], by_terminal["route"], by_code["route"]) == ("posted",) * 3
    await conn.execute(
        """INSERT INTO gifts (merchant_id, id, card_id, gifter_id, sender_name, recipient_name, amount,
                              currency, claim_hash, claim_sealed, opens_at, expires_at, design_id)
           VALUES ($1, 'gift_' || repeat('b', 16), $2, 'o-gifter', 'Li', 'Wang', 25000, 'CNY', $3, '\\x00',
                   now(), now() + interval '30 days', $4)""",
        MERCHANT,
        CARD_B,
        bytes(range(1, 33)),
        DESIGN,
    )


async def snapshot(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every row of every table but the schema's own history, as JSON text, in a stable order."""
    tables = await conn.fetch(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE 'schema\\_%'"""
    )
    return {
        t["relname"]: [
            r[0] for r in await conn.fetch(f"SELECT to_jsonb(t)::text FROM {t['relname']} t ORDER BY 1")
        ]
        for t in tables
    }


async def test_a_database_at_ab299df_with_data_migrates_forward_without_loss(
    empty_dsn: str, settings: Settings
) -> None:
    """settings.database_url: a new database, migrated by today's runner, to compare with."""
    conn = await asyncpg.connect(empty_dsn)
    try:
        # The history as ab299df applied it: the same files, recorded with the same checksums (the runner
        # of ab299df had no function files).
        await migrate(conn, historical_migrations(), functions=[])
        await write_data_as_at_ab299df(conn)
        before = await snapshot(conn)
        written = {"ledger_entries": 5, "idempotency_keys": 2, "staff_log": 1, "gifts": 1, "terminals": 1}
        assert {table: len(before[table]) for table in written} == written

        applied = await migrate(conn)
        assert [m.version for m in applied] == list(range(14, len(load_migrations()) + 1))
        assert await snapshot(conn) == before
        unbalanced = await conn.fetchval(
            """SELECT count(*) FROM cards c
                WHERE c.balance <> (SELECT sum(e.amount) FROM ledger_entries e
                                     WHERE e.merchant_id = c.merchant_id AND e.card_id = c.id)"""
        )
        assert unbalanced == 0
        assert await conn.fetchval("SELECT balance FROM cards WHERE id = $1", CARD_A) == 7_200
        assert await conn.fetchval("SELECT balance FROM cards WHERE id = $1", CARD_B) == 23_800
    finally:
        await conn.close()

    assert settings.database_url is not None
    assert dump_schema(empty_dsn) == dump_schema(settings.database_url)

    server = LiveServer(settings.with_database(empty_dsn)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            spent = await client.post(
                "/v1/redemptions", json={"code": format_code(CODES["a"]), "amount": 500}, headers=headers
            )
            assert spent.status_code == 201, spent.text
            assert (spent.json()["amount"], spent.json()["balance_after"]) == (-500, 6_700)
            # The answer the one-round-trip path stored as a posting replays, and spends nothing again.
            retried = await client.post(
                "/v1/redemptions", json=RETRIED, headers={**headers, "Idempotency-Key": "till-1-sale-8"}
            )
            assert retried.status_code == 201 and retried.headers["idempotent-replayed"] == "true"
            assert (retried.json()["amount"], retried.json()["balance_after"]) == (-300, 7_200)
            revealed = await client.get(f"/v1/cards/{CARD_A}/code", headers=headers)
            assert revealed.json()["code"] == format_code(CODES["a"])
            card = (await client.get(f"/v1/cards/{CARD_B}", headers=headers)).json()
            assert card["balance"] == 23_800
    finally:
        server.stop()

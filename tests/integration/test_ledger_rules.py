"""The database itself holds the money invariants, even for code that bypasses the application."""

from __future__ import annotations

import asyncpg
import pytest

from giftcards.core.sealing import Keyring
from giftcards.stores.merchants import Principal, create_merchant
from giftcards.value import ledger
from giftcards.value.audit import audit_balances
from giftcards.value.cards import CardSpec, issue, replace_code
from tests.support.api import MASTER_KEY

KEYRING = Keyring(MASTER_KEY)
INSERT_ENTRY = """INSERT INTO ledger_entries
                         (merchant_id, card_id, kind, amount, balance_after, currency, actor_type)
                  VALUES ($1, $2, $3, $4, $5, 'CNY', 'system')"""


async def new_card(db: asyncpg.Connection, amount: int = 1_000) -> tuple[str, str]:
    merchant = await create_merchant(db, KEYRING, name="Rules")
    principal = Principal("api_key", merchant.api_key.id, merchant.id)
    card = await issue(db, KEYRING, principal, CardSpec(amount=amount))
    return merchant.id, card.id


async def insert_entry(
    db: asyncpg.Connection, merchant_id: str, card_id: str, kind: str, amount: int, *, balance_after: int
) -> None:
    """A ledger entry written past the service, so that only the database's own rules can refuse it."""
    await db.execute(INSERT_ENTRY, merchant_id, card_id, kind, amount, balance_after)


async def test_ledger_entries_cannot_be_updated_deleted_or_truncated(db: asyncpg.Connection) -> None:
    await new_card(db)
    for statement in (
        "UPDATE ledger_entries SET amount = amount + 1",
        "DELETE FROM ledger_entries",
        "TRUNCATE ledger_entries CASCADE",
    ):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await db.execute(statement)
    assert await db.fetchval("SELECT count(*) FROM ledger_entries") == 1


async def test_a_balance_changed_without_its_ledger_entry_is_refused_at_commit(
    db: asyncpg.Connection,
) -> None:
    _, card_id = await new_card(db)
    with pytest.raises(asyncpg.CheckViolationError, match="does not match its ledger"):
        await db.execute("UPDATE cards SET balance = balance + 500 WHERE id = $1", card_id)
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card_id) == 1_000


async def test_an_entry_that_breaks_the_running_balance_is_refused(db: asyncpg.Connection) -> None:
    merchant_id, card_id = await new_card(db)
    with pytest.raises(asyncpg.CheckViolationError, match="balance chain"):
        async with db.transaction():
            await db.execute("UPDATE cards SET balance = 900 WHERE id = $1", card_id)
            await insert_entry(db, merchant_id, card_id, "redeem", -100, balance_after=950)


async def test_an_issue_entry_must_start_the_chain_at_its_amount(db: asyncpg.Connection) -> None:
    """ledger_chain (schema/functions/ledger.sql) skips its function for consistent issue entries only."""
    merchant_id, card_id = await new_card(db)
    existing = await db.fetchrow("SELECT code_sealed FROM cards WHERE id = $1", card_id)
    with pytest.raises(asyncpg.CheckViolationError, match="issue entry must leave balance_after = amount"):
        async with db.transaction():
            await db.execute(
                """INSERT INTO cards (merchant_id, id, code_hash, code_sealed, code_last4, currency,
                                      initial_amount, balance, state)
                   VALUES ($1, 'card_aaaaaaaaaaaaaaaa', $2, $3, 'AAAA', 'CNY', 100, 100, 'active')""",
                merchant_id,
                bytes(32),
                existing["code_sealed"],
            )
            await insert_entry(db, merchant_id, "card_aaaaaaaaaaaaaaaa", "issue", 100, balance_after=90)
    assert await db.fetchval("SELECT count(*) FROM cards") == 1


async def test_named_constraints_refuse_negative_balances_and_bad_amounts(db: asyncpg.Connection) -> None:
    merchant_id, card_id = await new_card(db)
    with pytest.raises(asyncpg.CheckViolationError, match="card_balance_not_negative"):
        await db.execute("UPDATE cards SET balance = -1 WHERE id = $1", card_id)
    with pytest.raises(asyncpg.CheckViolationError, match="ledger_amount_sign"):
        await insert_entry(db, merchant_id, card_id, "redeem", 100, balance_after=1_100)
    with pytest.raises(asyncpg.UniqueViolationError, match="ledger_one_issue_per_card"):
        await insert_entry(db, merchant_id, card_id, "issue", 100, balance_after=100)


async def test_post_refuses_without_writing_anything(db: asyncpg.Connection) -> None:
    merchant_id, card_id = await new_card(db, 500)
    with pytest.raises(Exception) as refused:
        await ledger.post(
            db, merchant_id=merchant_id, kind="redeem", actor=ledger.SYSTEM, card_id=card_id, amount=501
        )
    assert getattr(refused.value, "code", None) == "insufficient_funds"
    assert await db.fetchval("SELECT count(*) FROM ledger_entries") == 1


async def test_audit_finds_a_balance_tampered_with_behind_the_rules(db: asyncpg.Connection) -> None:
    _, card_id = await new_card(db)
    assert (await audit_balances(db)).ok
    # A superuser can switch triggers off; the audit is the check that does not trust them.
    await db.execute("SET session_replication_role = replica")
    await db.execute("UPDATE cards SET balance = 1234 WHERE id = $1", card_id)
    await db.execute("SET session_replication_role = origin")
    report = await audit_balances(db)
    assert not report.ok and len(report.mismatches) == 1 and "ledger sums to 1000" in report.mismatches[0]


async def test_a_change_of_holder_or_code_moves_the_payload_generation_and_nothing_else_does(
    db: asyncpg.Connection,
) -> None:
    """Trigger card_passed_on (schema/functions/cards.sql): for code that bypasses the application too."""
    merchant_id, card_id = await new_card(db)

    async def generation() -> int:
        return int(await db.fetchval("SELECT payload_generation FROM cards WHERE id = $1", card_id))

    await ledger.post(
        db, merchant_id=merchant_id, kind="redeem", actor=ledger.SYSTEM, card_id=card_id, amount=1
    )
    await db.execute("UPDATE cards SET owner_id = NULL, campaign = 'x' WHERE id = $1", card_id)  # no change
    assert await generation() == 0
    await db.execute("UPDATE cards SET owner_id = 'o-alice' WHERE id = $1", card_id)
    await db.execute("UPDATE cards SET owner_id = 'o-bob', payload_generation = 0 WHERE id = $1", card_id)
    assert await generation() == 2  # the holder changed twice; naming the old generation does not undo it
    await replace_code(db, KEYRING, merchant_id, card_id)
    assert await generation() == 3
    await db.execute("UPDATE cards SET payload_generation = 65535 WHERE id = $1", card_id)
    await db.execute("UPDATE cards SET owner_id = NULL WHERE id = $1", card_id)
    assert await generation() == 0  # 16 bits, as signed
    with pytest.raises(asyncpg.CheckViolationError, match="card_payload_generation_range"):
        await db.execute("UPDATE cards SET payload_generation = 65536 WHERE id = $1", card_id)


async def test_post_activity_refuses_a_payload_of_another_generation_and_says_nothing_of_the_card(
    db: asyncpg.Connection,
) -> None:
    merchant_id, card_id = await new_card(db)
    await db.execute("UPDATE cards SET owner_id = 'o-alice' WHERE id = $1", card_id)
    refused = await db.fetchrow(
        "SELECT * FROM post_activity($1, $2, NULL, 'redeem', 400, NULL, false, NULL, NULL, 'system', "
        "NULL, NULL, NULL, NULL, 0)",
        merchant_id,
        card_id,
    )
    assert refused["outcome"] == "invalid_qr_payload"
    assert (refused["card_id"], refused["card_balance"], refused["entry_id"]) == (None, None, None)
    posted = await ledger.post(
        db,
        merchant_id=merchant_id,
        kind="redeem",
        actor=ledger.SYSTEM,
        card_id=card_id,
        amount=400,
        payload_generation=1,
    )
    assert posted.balance == 600


async def test_the_card_maximum_is_one_number_in_python_and_in_the_schema(db: asyncpg.Connection) -> None:
    """Named once in the schema (card_maximum(), schema/migrations/0014); Python validates with its copy."""
    assert await db.fetchval("SELECT card_maximum()") == ledger.MAX_AMOUNT
    merchant_id, card_id = await new_card(db, ledger.MAX_AMOUNT)
    with pytest.raises(asyncpg.CheckViolationError, match="card_balance_within_maximum"):
        await db.execute("UPDATE cards SET balance = balance + 1 WHERE id = $1", card_id)
    with pytest.raises(asyncpg.CheckViolationError, match="amount_positive"):
        await db.execute(
            """INSERT INTO stores (merchant_id, id, name, redeem_limit)
               VALUES ($1, 'store_aaaaaaaaaaaaaaaa', 'Till', 0)""",
            merchant_id,
        )
    refused = await db.fetchrow(
        """SELECT outcome, card_balance FROM post_activity($1, $2, NULL, 'load', 1, NULL, false, NULL, NULL,
                                                          'system', NULL, NULL, NULL, NULL)""",
        merchant_id,
        card_id,
    )
    assert (refused["outcome"], refused["card_balance"]) == ("balance_limit_exceeded", ledger.MAX_AMOUNT)


async def test_each_append_only_table_names_itself_in_the_refusal(db: asyncpg.Connection) -> None:
    """One trigger function (schema/functions/append_only.sql) serves the ledger and the staff log."""
    await new_card(db)
    with pytest.raises(asyncpg.RestrictViolationError) as ledger_refusal:
        await db.execute("DELETE FROM ledger_entries")
    with pytest.raises(asyncpg.RestrictViolationError) as staff_log_refusal:
        await db.execute("TRUNCATE staff_log")
    assert (ledger_refusal.value.constraint_name, str(ledger_refusal.value)) == (
        "ledger_append_only",
        "ledger entries are append-only (DELETE refused)",
    )
    assert (staff_log_refusal.value.constraint_name, str(staff_log_refusal.value)) == (
        "staff_log_append_only",
        "the staff log is append-only (TRUNCATE refused)",
    )

"""Random sequences of operations never break the invariants: balance >= 0, balance == sum(ledger),
refunds of a redemption <= the redemption."""

from __future__ import annotations

import asyncio

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from giftcards.core.errors import DomainError
from giftcards.core.sealing import Keyring
from giftcards.stores.merchants import Principal, create_merchant
from giftcards.value import ledger
from giftcards.value.cards import CardSpec, issue
from tests.support.api import MASTER_KEY

KEYRING = Keyring(MASTER_KEY)

amounts = st.integers(min_value=1, max_value=20_000)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("redeem"), amounts, st.booleans()),
        st.tuples(st.just("refund"), amounts, st.integers(min_value=0, max_value=50)),
        st.tuples(st.just("load"), amounts),
        st.tuples(st.just("adjust"), st.integers(min_value=-20_000, max_value=20_000).filter(bool)),
        st.tuples(st.sampled_from(["block", "unblock", "deactivate", "activate"])),
    ),
    max_size=30,
)


async def run_sequence(dsn: str, initial: int, steps: list[tuple[object, ...]]) -> None:
    db = await asyncpg.connect(dsn)
    try:
        merchant = await create_merchant(db, KEYRING, name="Props")
        principal = Principal("api_key", merchant.api_key.id, merchant.id)
        card_id = (await issue(db, KEYRING, principal, CardSpec(amount=initial))).id
        actor = ledger.Actor.of(principal)
        redemptions: list[int] = []
        for step in steps:
            kind = step[0]
            options: dict[str, object] = {}
            if kind == "redeem":
                options = {"amount": step[1], "allow_partial": step[2]}
            elif kind == "refund":
                if not redemptions:
                    continue
                options = {"amount": step[1], "refund_of": redemptions[int(step[2]) % len(redemptions)]}  # type: ignore[call-overload]
            elif kind in ("load", "adjust"):
                options = {"amount": step[1], "reason": "test" if kind == "adjust" else None}
            try:
                posting = await ledger.post(
                    db,
                    merchant_id=principal.merchant_id,
                    kind=str(kind),
                    actor=actor,
                    card_id=card_id,
                    **options,  # type: ignore[arg-type]
                )
            except DomainError:
                pass
            else:
                if kind == "redeem":
                    redemptions.append(posting.entry_id)
            balance = await db.fetchval("SELECT balance FROM cards WHERE id = $1", card_id)
            total = await db.fetchval("SELECT sum(amount) FROM ledger_entries WHERE card_id = $1", card_id)
            assert balance >= 0
            assert balance == total
        over_refunded = await db.fetchval(
            """SELECT count(*) FROM ledger_entries r
               WHERE r.card_id = $1 AND r.kind = 'redeem'
                 AND -r.amount < (SELECT coalesce(sum(f.amount), 0) FROM ledger_entries f
                                   WHERE f.refund_of = r.id)""",
            card_id,
        )
        assert over_refunded == 0
    finally:
        await db.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.integers(min_value=1, max_value=50_000), steps=operations)
def test_random_operations_keep_the_invariants(
    database_url: str, initial: int, steps: list[tuple[object, ...]]
) -> None:
    asyncio.run(run_sequence(database_url, initial, steps))

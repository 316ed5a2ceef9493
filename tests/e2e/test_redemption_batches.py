"""Till redemptions that arrive together share one statement and one transaction, and each still gets the
answer, the ledger entry, the staff-log record and the stored key it would have had on its own.

One batch in flight (GIFTCARDS_REDEEM_BATCHES=1) makes the batches form: the first redemption of a burst
goes alone and the rest wait for it, then go together.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg
import httpx
import pytest

from giftcards.config import Settings
from giftcards.value import redemption
from tests.support.api import Merchant, issue_card
from tests.support.redemption import redeem
from tests.support.servers import eventually
from tests.support.terminals import Terminal, qr_payload, till_in_new_store


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, redeem_batches=1, pool_max_size=20, db_timeout=30.0)


@dataclasses.dataclass
class Batches:
    """The size of each batch sent. With `hold_next` set, the next batch waits (10 s at most) until two
    more redemptions wait behind it, so that a burst forms a batch however slowly the requests arrive."""

    sizes: list[int] = dataclasses.field(default_factory=list)
    arrived: int = 0
    hold_next: bool = False


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> Iterator[Batches]:
    seen = Batches()
    original_redeem = redemption.Batcher.redeem
    original_many = redemption.redeem_many

    async def counting(self: redemption.Batcher, one: redemption.Redemption) -> Any:
        seen.arrived += 1
        return await original_redeem(self, one)

    async def recording(conn: asyncpg.Connection, batch: Sequence[redemption.Redemption]) -> Any:
        if seen.hold_next:
            seen.hold_next = False
            await eventually(lambda: seen.arrived >= len(batch) + 2, timeout=10)
        seen.sizes.append(len(batch))
        return await original_many(conn, batch)

    monkeypatch.setattr(redemption.Batcher, "redeem", counting)
    monkeypatch.setattr(redemption, "redeem_many", recording)
    yield seen


@pytest.fixture
async def till(client: httpx.AsyncClient, merchant: Merchant) -> Terminal:
    return await till_in_new_store(client, merchant, "manager")


async def test_a_burst_goes_in_batches_and_each_redemption_is_answered_as_alone(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
    batches: Batches,
) -> None:
    cards = [await issue_card(client, merchant, 10_000) for _ in range(6)]
    payloads = [await qr_payload(client, merchant, card["id"]) for card in cards]
    hot = cards[0]
    retried = await redeem(
        client, till.headers, {"qr_payload": payloads[1], "amount": 100}, key="retried-key"
    )
    assert retried.status_code == 201
    batches.sizes.clear()
    batches.arrived = 0
    batches.hold_next = True

    requests = [
        *[({"qr_payload": payloads[0], "amount": 1_500}, f"hot-{i}") for i in range(8)],  # 6 fit, 2 do not
        *[({"qr_payload": payloads[i], "amount": 1_000 * i}, f"card-{i}") for i in range(2, 6)],
        ({"qr_payload": payloads[1], "amount": 100}, "retried-key"),  # replayed from its stored answer
        ({"code": "2345-6789-ABCD-EFGH-JKL2", "amount": 1}, "unknown"),  # the statement answers 404
    ]
    answers = await asyncio.gather(*(redeem(client, till.headers, body, key=key) for body, key in requests))

    assert max(batches.sizes) > 1, batches.sizes  # they did go together
    by_key = {key: answer for (_, key), answer in zip(requests, answers, strict=True)}
    hot_answers = [by_key[f"hot-{i}"] for i in range(8)]
    assert sorted(answer.status_code for answer in hot_answers) == [201] * 6 + [402] * 2
    balances_seen = sorted(
        answer.json()["card"]["balance"] for answer in hot_answers if answer.status_code == 201
    )
    assert balances_seen == [10_000 - 1_500 * n for n in range(6, 0, -1)]  # one after the other, none lost
    for i in range(2, 6):
        assert by_key[f"card-{i}"].status_code == 201
        assert by_key[f"card-{i}"].json()["card"]["balance"] == 10_000 - 1_000 * i
    assert by_key["retried-key"].json() == retried.json()
    assert by_key["retried-key"].headers["idempotent-replayed"] == "true"
    assert by_key["unknown"].status_code == 404

    for card in cards:
        balance, total = await db.fetchrow(
            "SELECT (SELECT balance FROM cards WHERE id = $1), "
            "(SELECT sum(amount) FROM ledger_entries WHERE card_id = $1)",
            card["id"],
        )
        assert balance == total
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", hot["id"]) == 1_000
    redeemed = await db.fetchval(
        "SELECT count(*) FROM staff_log WHERE terminal_id = $1 AND action = 'redeem' AND outcome = 'ok'",
        till.id,
    )
    assert redeemed == 1 + 6 + 4  # the first retried-key redemption, six on the hot card, four others
    keys = await db.fetch("SELECT key FROM idempotency_keys WHERE principal_id = $1", till.id)
    assert {row["key"] for row in keys} >= {f"hot-{i}" for i in range(8)} | {f"card-{i}" for i in range(2, 6)}


async def test_twins_with_one_key_in_flight_together_redeem_once(
    client: httpx.AsyncClient,
    merchant: Merchant,
    till: Terminal,
    db: asyncpg.Connection,
) -> None:
    card = await issue_card(client, merchant, 10_000)
    body = {"qr_payload": await qr_payload(client, merchant, card["id"]), "amount": 700}
    answers = await asyncio.gather(*(redeem(client, till.headers, body, key="twin") for _ in range(12)))
    assert {answer.status_code for answer in answers} == {201}
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert await db.fetchval("SELECT balance FROM cards WHERE id = $1", card["id"]) == 9_300
    assert (
        await db.fetchval(
            "SELECT count(*) FROM ledger_entries WHERE card_id = $1 AND kind = 'redeem'", card["id"]
        )
        == 1
    )

"""The till's redemption under the attacks of issue 15, items 4 and 6, its body sent with a Content-Length
and chunked alike.

4. The failed-attempt counters of one merchant's terminals never stop another merchant's tills at the same
   address, many tills of one merchant behind one address are not stopped by the address counters, and
   the client address is read from X-Forwarded-For only when the proxy is trusted.
6. A QR payload issued before its card was passed on, or before its code was replaced, never spends it.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest

from giftcards.core.sealing import Keyring
from giftcards.stores import ratelimit
from giftcards.value import cards
from tests.e2e.test_designs_gifts import FRIEND, STRANGER, bought, claimed
from tests.reliability.load import start_server
from tests.support.api import MASTER_KEY, Merchant, create_merchant, issue_card, with_key
from tests.support.redemption import redeem
from tests.support.terminals import (
    Terminal,
    create_store,
    new_terminal,
    qr_payload,
    till_in_new_store,
    unknown_code,
)

HERE = "127.0.0.1"  # every till of these tests calls from here, as tills behind one NAT do


async def wrong_lookup(client: httpx.AsyncClient, till: Terminal) -> httpx.Response:
    return await client.post("/v1/cards/lookup", json={"code": unknown_code()}, headers=till.headers)


async def fill(db: asyncpg.Connection, subject: str, failures: int) -> None:
    """Failures of the current window, as other tills would have made them."""
    await db.execute(
        "INSERT INTO failed_attempts (subject) SELECT $1 FROM generate_series(1, $2)", subject, failures
    )


async def balance(db: asyncpg.Connection, card_id: str) -> int:
    return int(await db.fetchval("SELECT balance FROM cards WHERE id = $1", card_id))


# -- 4. counters per merchant, a platform ceiling, trusted proxies ------------------------------------


async def test_a_till_still_redeems_where_another_merchants_terminals_failed_12_times(
    client: httpx.AsyncClient,
    merchant: Merchant,
    other_merchant: Merchant,
    db: asyncpg.Connection,
) -> None:
    ours = await till_in_new_store(client, merchant)
    theirs = [await till_in_new_store(client, other_merchant) for _ in range(2)]
    theirs_answered = [(await wrong_lookup(client, theirs[i % 2])).status_code for i in range(12)]
    card = await issue_card(client, merchant, 100_000)
    for chunked in (False, True):
        response = await redeem(
            client, ours.headers, {"code": card["code"], "amount": 1_000}, chunked=chunked
        )
        assert response.status_code == 201, (chunked, response.text)
        looked = await client.post("/v1/cards/lookup", json={"code": card["code"]}, headers=ours.headers)
        assert looked.status_code == 200, looked.text
    assert await balance(db, card["id"]) == 98_000
    assert theirs_answered == [404] * 12  # each of their tills has failed 6 times: below its own limit


async def test_redemptions_read_the_counters_lookups_write_with_the_same_limits(
    client: httpx.AsyncClient,
    merchant: Merchant,
    other_merchant: Merchant,
    db: asyncpg.Connection,
) -> None:
    ours, theirs = await till_in_new_store(client, merchant), await till_in_new_store(client, other_merchant)
    assert (await wrong_lookup(client, theirs)).status_code == 404
    written = await db.fetch("SELECT subject FROM failed_attempts ORDER BY subject")
    assert [r["subject"] for r in written] == [
        f"address:{other_merchant.id}:{HERE}",
        f"platform-address:{HERE}",
        f"terminal:{theirs.id}",
    ]
    card = await issue_card(client, merchant, 100_000)
    their_card = await issue_card(client, other_merchant, 100_000)

    async def answers(till: Terminal, card_code: str) -> list[int]:
        body = {"code": card_code, "amount": 100}
        return [(await redeem(client, till.headers, body, chunked=g)).status_code for g in (False, True)]

    # The other merchant's address counter one short of its limit, then at it: its tills here wait, on
    # whatever the transport, and ours do not.
    await fill(db, f"address:{other_merchant.id}:{HERE}", ratelimit.ADDRESS_LIMIT - 2)
    assert await answers(theirs, their_card["code"]) == [201, 201]
    await fill(db, f"address:{other_merchant.id}:{HERE}", 1)
    assert await answers(theirs, their_card["code"]) == [429, 429]
    assert await answers(ours, card["code"]) == [201, 201]

    # The ceiling of the address, all merchants together: one short, then reached.
    await fill(db, f"platform-address:{HERE}", ratelimit.PLATFORM_ADDRESS_LIMIT - 2)  # with the one above
    assert await answers(ours, card["code"]) == [201, 201]
    await fill(db, f"platform-address:{HERE}", 1)
    assert await answers(ours, card["code"]) == [429, 429]
    assert await balance(db, card["id"]) == 100_000 - 4 * 100
    assert await balance(db, their_card["id"]) == 100_000 - 2 * 100


async def test_fifty_tills_of_one_merchant_behind_one_address_each_failing_a_few_times_still_redeem(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    store = await create_store(client, merchant)
    tills = [await new_terminal(client, merchant, store["id"]) for _ in range(50)]
    card = await issue_card(client, merchant, 100_000)
    for index, till in enumerate(tills):
        for attempt in range(3):
            wrong = await wrong_lookup(client, till)
            assert wrong.status_code == 404, (index, attempt, wrong.text)
    for index, till in enumerate(tills):
        paid = await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 100}, headers=till.keyed()
        )
        assert paid.status_code == 201, (index, paid.text)
    counted = await db.fetch("SELECT subject, count(*) AS n FROM failed_attempts GROUP BY subject")
    by_subject = {r["subject"]: r["n"] for r in counted}
    assert by_subject[f"address:{merchant.id}:{HERE}"] == by_subject[f"platform-address:{HERE}"] == 150
    assert await balance(db, card["id"]) == 100_000 - 50 * 100


@pytest.mark.slow
async def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    """`giftcards serve` as deployed: by default a local process cannot forge the address the staff log
    and the limits see; GIFTCARDS_TRUSTED_PROXIES naming the proxy makes its header count."""
    forged = {"X-Forwarded-For": "6.6.6.6"}
    for trusted, seen in (("", HERE), (HERE, "6.6.6.6")):
        server = start_server(database_url, tmp_path / "serve.log", GIFTCARDS_TRUSTED_PROXIES=trusted)
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=30, headers=forged) as http:
                merchant = await create_merchant(http, f"Proxied {trusted or 'none'}")
                till = await till_in_new_store(http, merchant)
                card = await issue_card(http, merchant, 10_000)
                assert (await wrong_lookup(http, till)).status_code == 404
                for chunked in (False, True):
                    body = {"code": card["code"], "amount": 100}
                    assert (await redeem(http, till.headers, body, chunked=chunked)).status_code == 201
        finally:
            assert server.terminate() == 0
        logged = await db.fetch(
            "SELECT action, client_address FROM staff_log WHERE terminal_id = $1", till.id
        )
        assert sorted((r["action"], r["client_address"]) for r in logged) == [
            ("enroll", seen),
            ("lookup", seen),
            ("redeem", seen),
            ("redeem", seen),
        ]
        counted = await db.fetchval(
            "SELECT count(*) FROM failed_attempts WHERE subject = $1", f"address:{merchant.id}:{seen}"
        )
        assert counted == 1


# -- 6. a payload issued before the card was passed on ------------------------------------------------


async def refused_everywhere(client: httpx.AsyncClient, till: Terminal, payload: str) -> None:
    """Redeemed on either path and looked up, the payload answers as a stale or forged one."""
    for chunked in (False, True):
        refused = await redeem(
            client, till.headers, {"qr_payload": payload, "amount": 40_000}, chunked=chunked
        )
        assert refused.status_code == 404, (chunked, refused.text)
        assert refused.json()["code"] == "invalid_qr_payload" and "balance" not in refused.json()
    looked = await client.post("/v1/cards/lookup", json={"qr_payload": payload}, headers=till.headers)
    assert looked.status_code == 404 and looked.json()["code"] == "invalid_qr_payload", looked.text


async def spends_whatever_the_transport(client: httpx.AsyncClient, till: Terminal, payload: str) -> None:
    for chunked in (False, True):
        paid = await redeem(client, till.headers, {"qr_payload": payload, "amount": 1_000}, chunked=chunked)
        assert paid.status_code == 201, (chunked, paid.text)


async def test_a_payload_issued_before_the_card_was_passed_on_no_longer_spends_it(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    till = await till_in_new_store(client, merchant)
    gift = await bought(client, merchant)
    card_id = gift["card"]["id"]
    while_waiting = await qr_payload(client, merchant, card_id)  # the shop's static QR before the claim
    token = await claimed(client, gift["link"])  # FRIEND holds the card
    static = await qr_payload(client, merchant, card_id)  # e.g. printed for FRIEND, or kept as a photo
    rotating = (await client.get(f"/v1/card_pages/{token}/qr")).json()["payload"]  # fresh for a minute
    body = {"owner_id": FRIEND, "sender_name": "红", "recipient_name": "阿华", "message": "转送给你"}
    passed = await client.post(f"/v1/cards/{card_id}/gifts", json=body, headers=with_key(merchant))
    assert passed.status_code == 201, passed.text
    new_token = await claimed(client, passed.json()["link"], STRANGER)

    for payload in (while_waiting, static, rotating):
        await refused_everywhere(client, till, payload)
    assert await balance(db, card_id) == 52_000
    failures = await db.fetchval(
        "SELECT count(*) FROM failed_attempts WHERE subject = $1", f"terminal:{till.id}"
    )
    assert failures == 9  # each refusal counts as a failed attempt, as a forged payload does

    await spends_whatever_the_transport(client, till, await qr_payload(client, merchant, card_id))
    new_rotating = (await client.get(f"/v1/card_pages/{new_token}/qr")).json()["payload"]
    await spends_whatever_the_transport(client, till, new_rotating)
    assert await balance(db, card_id) == 52_000 - 4 * 1_000


async def test_a_payload_issued_before_the_code_was_replaced_no_longer_spends_the_card(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    till = await till_in_new_store(client, merchant)
    card = await issue_card(client, merchant, 100_000)
    old = await qr_payload(client, merchant, card["id"])
    await cards.replace_code(db, Keyring(MASTER_KEY), merchant.id, card["id"])
    await refused_everywhere(client, till, old)
    assert await balance(db, card["id"]) == 100_000
    fresh = await qr_payload(client, merchant, card["id"])
    assert fresh != old
    await spends_whatever_the_transport(client, till, fresh)
    assert await balance(db, card["id"]) == 98_000

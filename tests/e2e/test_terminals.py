"""Stores and staff terminals over HTTP: enrollment, tokens, roles, the failed-lookup limit, the staff log."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from giftcards.config import Settings
from giftcards.stores import ratelimit
from giftcards.value import codes
from tests.support.api import Merchant, issue_card, with_key
from tests.support.servers import LiveServer
from tests.support.terminals import (
    Terminal,
    backdate_redemption,
    create_store,
    create_terminal,
    enroll,
    new_terminal,
    qr_payload,
    staff_log,
    till_in_new_store,
    unknown_code,
)

# -- enrollment and tokens ------------------------------------------------------------------------------


async def test_an_enrollment_code_is_exchanged_once_for_a_token_shown_once(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    store = await create_store(client, merchant, redeem_limit=50_000)
    created = await create_terminal(client, merchant, store["id"], "manager")
    assert created["state"] == "awaiting_enrollment" and created["token_last4"] is None
    code = created["enrollment"]["code"]
    assert len(code) == 11 and code[5] == "-" and set(code.replace("-", "")) <= set(codes.ALPHABET)

    typed = code.lower().replace("-", " ")  # as a person might type it
    first = await enroll(client, typed)
    assert first.status_code == 201, first.text
    token = first.json()["token"]
    assert token.startswith(f"gt_{merchant.id}_")
    assert first.json()["state"] == "active" and first.json()["token_last4"] == token[-4:]

    again = await enroll(client, code)
    assert again.status_code == 404 and again.json()["code"] == "invalid_enrollment_code"

    me = await client.get("/v1/terminal", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert (me.json()["id"], me.json()["role"], me.json()["store"]["redeem_limit"]) == (
        created["id"],
        "manager",
        50_000,
    )
    shown = (await client.get(f"/v1/terminals/{created['id']}", headers=merchant.headers)).json()
    assert "token" not in shown and "enrollment" not in shown and shown["state"] == "active"
    # Neither the token nor the enrollment code is stored in the clear.
    dump = await db.fetchval("SELECT string_agg(t::text, '|') FROM terminals t")
    codes_dump = await db.fetchval("SELECT string_agg(e::text, '|') FROM terminal_enrollments e")
    assert token not in dump and token.split("_", 3)[3] not in dump
    assert code.replace("-", "") not in codes_dump


async def test_concurrent_exchanges_of_one_code_enrol_exactly_once(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    store = await create_store(client, merchant)
    code = (await create_terminal(client, merchant, store["id"]))["enrollment"]["code"]
    answers = await asyncio.gather(*(enroll(client, code) for _ in range(8)))
    assert sorted(r.status_code for r in answers) == [201] + [404] * 7


async def test_an_enrollment_code_expires(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    store = await create_store(client, merchant)
    created = await create_terminal(client, merchant, store["id"])
    await db.execute(
        "UPDATE terminal_enrollments SET created_at = now() - interval '16 minutes', "
        "expires_at = now() - interval '1 minute' WHERE terminal_id = $1",
        created["id"],
    )
    expired = await enroll(client, created["enrollment"]["code"])
    assert expired.status_code == 404 and expired.json()["code"] == "invalid_enrollment_code"


async def test_wrong_used_expired_and_malformed_enrollment_codes_get_one_answer(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    store = await create_store(client, merchant)
    used = (await create_terminal(client, merchant, store["id"]))["enrollment"]["code"]
    assert (await enroll(client, used)).status_code == 201
    answers = [await enroll(client, c) for c in (used, "ABCDE-FGHJK", "0O1I", "x" * 40)]
    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1


async def test_failed_enrollments_are_rate_limited_per_address(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    store = await create_store(client, merchant)
    good = (await create_terminal(client, merchant, store["id"]))["enrollment"]["code"]
    await db.execute(  # what other devices at this address got wrong in the last minute
        "INSERT INTO failed_attempts (subject) SELECT 'enroll:127.0.0.1' FROM generate_series(1, $1)",
        ratelimit.ENROLLMENT_LIMIT - 10,
    )
    for _ in range(10):
        assert (await enroll(client, "ABCDE-FGHJK")).status_code == 404
    limited = await enroll(client, good)
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    await db.execute("UPDATE failed_attempts SET created_at = created_at - interval '61 seconds'")
    assert (await enroll(client, good)).status_code == 201  # the code was not burnt by the refusal


async def test_a_revoked_terminal_is_refused_at_once_on_every_terminal_endpoint(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    terminal = await till_in_new_store(client, merchant, "manager")
    card = await issue_card(client, merchant, 10_000)
    redemption = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 100}, headers=terminal.keyed()
    )
    assert redemption.status_code == 201
    revoked = await client.post(f"/v1/terminals/{terminal.id}/revoke", headers=with_key(merchant))
    assert revoked.json()["state"] == "revoked"
    calls = await _every_terminal_call(client, terminal, card, redemption.json()["id"])
    for response in calls:
        assert response.status_code == 401, response.request.url
        assert response.json()["code"] == "unauthenticated"
    rotated = await client.post(f"/v1/terminals/{terminal.id}/rotate", headers=with_key(merchant))
    assert rotated.status_code == 409 and rotated.json()["code"] == "terminal_revoked"
    attempts = await staff_log(client, merchant, terminal=terminal.id, action="authenticate")
    assert len(attempts) == len(calls) and {e["outcome"] for e in attempts} == {"unauthenticated"}


async def _every_terminal_call(
    client: httpx.AsyncClient, terminal: Terminal, card: dict[str, Any], redemption_id: str
) -> list[httpx.Response]:
    code = card["code"]
    return [
        await client.get(f"/v1/terminal/cards/{card['id']}/thumbnail.png", headers=terminal.headers),
        await client.get("/v1/terminal", headers=terminal.headers),
        await client.get("/v1/terminal/redemptions", headers=terminal.headers),
        await client.post("/v1/cards/lookup", json={"code": code}, headers=terminal.headers),
        await client.post("/v1/redemptions", json={"code": code, "amount": 100}, headers=terminal.keyed()),
        await client.post("/v1/refunds", json={"redemption": redemption_id}, headers=terminal.keyed()),
        await client.post("/v1/terminal/cards/block", json={"code": code}, headers=terminal.keyed()),
    ]


async def test_rotation_ends_the_old_token_and_a_new_code_enrols_the_device_again(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    store = await create_store(client, merchant)
    terminal = await new_terminal(client, merchant, store["id"])
    stale = await create_terminal(client, merchant, store["id"])  # a second, unenrolled one stays put
    rotated = await client.post(f"/v1/terminals/{terminal.id}/rotate", headers=with_key(merchant))
    assert rotated.status_code == 200 and rotated.json()["state"] == "awaiting_enrollment"
    assert (await client.get("/v1/terminal", headers=terminal.headers)).status_code == 401
    again = await enroll(client, rotated.json()["enrollment"]["code"])
    assert again.status_code == 201 and again.json()["id"] == terminal.id
    new_token = again.json()["token"]
    assert new_token != terminal.token
    assert (
        await client.get("/v1/terminal", headers={"Authorization": f"Bearer {new_token}"})
    ).status_code == 200
    assert (await enroll(client, stale["enrollment"]["code"])).status_code == 201


# -- the authorisation matrix ---------------------------------------------------------------------------


async def test_a_terminal_of_another_merchant_gets_nothing_of_this_one(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    mine = await till_in_new_store(client, merchant, "manager")
    theirs = await new_terminal(
        client, other_merchant, (await create_store(client, other_merchant))["id"], "manager"
    )
    card = await issue_card(client, merchant, 10_000)
    payload = await qr_payload(client, merchant, card["id"])
    redemption = (
        await client.post("/v1/redemptions", json={"code": card["code"], "amount": 500}, headers=mine.keyed())
    ).json()

    lookups = [
        await client.post("/v1/cards/lookup", json={"code": card["code"]}, headers=theirs.headers),
        await client.post("/v1/cards/lookup", json={"code": unknown_code()}, headers=theirs.headers),
    ]
    assert {r.status_code for r in lookups} == {404} and len({r.content for r in lookups}) == 1
    qr = await client.post("/v1/cards/lookup", json={"qr_payload": payload}, headers=theirs.headers)
    assert qr.status_code == 404 and qr.json()["code"] == "invalid_qr_payload"
    redeem = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 100}, headers=theirs.keyed()
    )
    assert redeem.status_code == 404 and redeem.json()["code"] == "invalid_code"
    block = await client.post("/v1/terminal/cards/block", json={"code": card["code"]}, headers=theirs.keyed())
    assert block.status_code == 404 and block.json()["code"] == "invalid_code"
    refund = await client.post("/v1/refunds", json={"redemption": redemption["id"]}, headers=theirs.keyed())
    assert refund.status_code == 404 and refund.json()["code"] == "activity_not_found"
    listed = (await client.get("/v1/terminal/redemptions", headers=theirs.headers)).json()
    assert listed["data"] == []
    thumb = await client.get(f"/v1/terminal/cards/{card['id']}/thumbnail.png", headers=theirs.headers)
    assert thumb.status_code == 404 and thumb.json()["code"] == "card_not_found"
    own_thumb = await client.get(f"/v1/terminal/cards/{card['id']}/thumbnail.png", headers=mine.headers)
    assert own_thumb.status_code == 200 and own_thumb.headers["content-type"] == "image/png"
    assert own_thumb.content.startswith(b"\x89PNG")
    # A token whose merchant part is swapped does not pass for the other merchant's terminal.
    secret = theirs.token.rsplit("_", 1)[1]
    forged = {"Authorization": f"Bearer gt_{merchant.id}_{secret}"}
    assert (await client.get("/v1/terminal", headers=forged)).status_code == 401
    # The card was not touched, and the other merchant's log names none of it.
    assert (await client.get(f"/v1/cards/{card['id']}", headers=merchant.headers)).json()["balance"] == 9_500
    assert all(e["card"] is None for e in await staff_log(client, other_merchant))
    assert await staff_log(client, merchant, terminal=theirs.id) == []


async def test_a_terminal_cannot_refund_or_list_another_stores_redemptions(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    north = await create_store(client, merchant, name="North")
    south = await create_store(client, merchant, name="South")
    north_till = await new_terminal(client, merchant, north["id"], "manager")
    south_clerk = await new_terminal(client, merchant, south["id"], "clerk")
    south_manager = await new_terminal(client, merchant, south["id"], "manager")
    card = await issue_card(client, merchant, 10_000)
    redemption = (
        await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 700}, headers=north_till.keyed()
        )
    ).json()
    for till in (south_clerk, south_manager):
        refused = await client.post(
            "/v1/refunds", json={"redemption": redemption["id"]}, headers=till.keyed()
        )
        assert refused.status_code == 403 and refused.json()["code"] == "refund_not_allowed"
        assert (await client.get("/v1/terminal/redemptions", headers=till.headers)).json()["data"] == []
    # Cards are the merchant's, not a store's: the other store may take from the same card.
    assert (
        await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 300}, headers=south_clerk.keyed()
        )
    ).status_code == 201
    own = (await client.get("/v1/terminal/redemptions", headers=north_till.headers)).json()["data"]
    assert [r["id"] for r in own] == [redemption["id"]] and own[0]["can_refund"] is True
    denied = await staff_log(client, merchant, outcome="refund_not_allowed")
    assert {e["terminal"] for e in denied} == {south_clerk.id, south_manager.id}
    assert all(e["card"] == card["id"] for e in denied)


async def test_a_clerk_is_held_to_the_store_limit_same_day_refunds_and_no_blocking(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    store = await create_store(client, merchant, redeem_limit=20_000)
    clerk = await new_terminal(client, merchant, store["id"], "clerk")
    manager = await new_terminal(client, merchant, store["id"], "manager")
    card = await issue_card(client, merchant, 100_000)

    key = str(uuid.uuid4())
    above = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 20_001}, headers=clerk.keyed(key)
    )
    assert above.status_code == 403 and above.json()["code"] == "store_limit_exceeded"
    assert above.json()["limit"] == 20_000
    at_limit = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 20_000}, headers=clerk.keyed()
    )
    assert at_limit.status_code == 201
    by_manager = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 30_000}, headers=manager.keyed()
    )
    assert by_manager.status_code == 201
    # A refusal is not stored against the key: once allowed (here by raising the limit) it goes through.
    await client.post(f"/v1/stores/{store['id']}", json={"redeem_limit": 25_000}, headers=merchant.headers)
    retried = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 20_001}, headers=clerk.keyed(key)
    )
    assert retried.status_code == 201

    today_by_manager = by_manager.json()["id"]
    refund_today = await client.post(
        "/v1/refunds", json={"redemption": today_by_manager}, headers=clerk.keyed()
    )
    assert refund_today.status_code == 201 and refund_today.json()["amount"] == 30_000

    older = await backdate_redemption(db, clerk, card["id"], 1_000, days=2)
    refused = await client.post("/v1/refunds", json={"redemption": older}, headers=clerk.keyed())
    assert refused.status_code == 403 and refused.json()["code"] == "manager_required"
    allowed = await client.post("/v1/refunds", json={"redemption": older}, headers=manager.keyed())
    assert allowed.status_code == 201 and allowed.json()["amount"] == 1_000

    blocked_by_clerk = await client.post(
        "/v1/terminal/cards/block", json={"code": card["code"]}, headers=clerk.keyed()
    )
    assert blocked_by_clerk.status_code == 403 and blocked_by_clerk.json()["code"] == "manager_required"
    blocked = await client.post(
        "/v1/terminal/cards/block",
        json={"code": card["code"], "reason": "reported stolen"},
        headers=manager.keyed(),
    )
    assert blocked.status_code == 201 and blocked.json()["card"]["state"] == "blocked"
    after = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 100}, headers=manager.keyed()
    )
    assert after.status_code == 409 and after.json()["code"] == "card_blocked"

    outcomes = [(e["terminal"], e["action"], e["outcome"]) for e in await staff_log(client, merchant)]
    assert (clerk.id, "redeem", "store_limit_exceeded") in outcomes
    assert (clerk.id, "refund", "manager_required") in outcomes
    assert (clerk.id, "block", "manager_required") in outcomes
    assert (manager.id, "block", "ok") in outcomes
    # The ledger says who did what, at which store.
    actors = await db.fetch(
        "SELECT DISTINCT actor_type, actor_id, store_id FROM ledger_entries "
        "WHERE card_id = $1 AND kind = 'redeem'",
        card["id"],
    )
    assert {(r["actor_type"], r["actor_id"], r["store_id"]) for r in actors} == {
        ("terminal", clerk.id, store["id"]),
        ("terminal", manager.id, store["id"]),
    }


async def test_a_role_change_takes_effect_on_the_next_call(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    terminal = await till_in_new_store(client, merchant, "manager")
    card = await issue_card(client, merchant, 1_000)
    changed = await client.post(
        f"/v1/terminals/{terminal.id}",
        json={"role": "clerk", "label": "Front till"},
        headers=merchant.headers,
    )
    assert (changed.json()["role"], changed.json()["label"]) == ("clerk", "Front till")
    refused = await client.post(
        "/v1/terminal/cards/block", json={"code": card["code"]}, headers=terminal.keyed()
    )
    assert refused.status_code == 403


async def test_api_keys_are_not_held_to_terminal_roles_and_terminals_not_let_into_the_back_office(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    terminal = await till_in_new_store(client, merchant, "manager", redeem_limit=100)
    card = await issue_card(client, merchant, 10_000)
    by_key = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 5_000}, headers=with_key(merchant)
    )
    assert by_key.status_code == 201
    assert await staff_log(client, merchant, action="redeem") == []  # the staff log is for terminals
    for method, path in (
        ("GET", "/v1/terminal"),
        ("GET", "/v1/terminal/redemptions"),
    ):
        assert (await client.request(method, path, headers=merchant.headers)).status_code == 401
    for method, path in (
        ("GET", "/v1/staff_log"),
        ("GET", "/v1/staff_log.csv"),
        ("GET", "/v1/stores"),
        ("GET", "/v1/terminals"),
        ("GET", f"/v1/cards/{card['id']}"),
        ("POST", f"/v1/terminals/{terminal.id}/rotate"),
        ("POST", f"/v1/cards/{card['id']}/unblock"),
    ):
        response = await client.request(method, path, headers=terminal.headers)
        assert response.status_code == 401, path


async def test_stores_and_terminals_are_the_merchants_own(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    store = await create_store(client, merchant, timezone="Europe/Paris")
    assert (store["timezone"], store["redeem_limit"]) == ("Europe/Paris", None)
    terminal = await create_terminal(client, merchant, store["id"])
    bad_zone = await client.post(
        "/v1/stores", json={"name": "X", "timezone": "Mars/Olympus"}, headers=merchant.headers
    )
    assert bad_zone.status_code == 400 and bad_zone.json()["errors"][0]["field"] == "timezone"
    for path in (f"/v1/stores/{store['id']}", f"/v1/terminals/{terminal['id']}"):
        assert (await client.get(path, headers=other_merchant.headers)).status_code == 404
    foreign = await client.post(
        "/v1/terminals", json={"store": store["id"], "label": "Sneaky"}, headers=other_merchant.headers
    )
    assert foreign.status_code == 404
    for action in ("revoke", "rotate"):
        response = await client.post(
            f"/v1/terminals/{terminal['id']}/{action}", headers=other_merchant.headers
        )
        assert response.status_code == 404
    assert (await client.get("/v1/terminals", headers=other_merchant.headers)).json()["data"] == []
    listed = (
        await client.get("/v1/terminals", params={"store": store["id"]}, headers=merchant.headers)
    ).json()
    assert [t["id"] for t in listed["data"]] == [terminal["id"]]
    cleared = await client.post(
        f"/v1/stores/{store['id']}", json={"redeem_limit": None, "name": "Marais"}, headers=merchant.headers
    )
    assert (cleared.json()["name"], cleared.json()["redeem_limit"]) == ("Marais", None)


# -- one answer for every bad code, and the failed-lookup limit ---------------------------------------------


async def test_wrong_foreign_and_malformed_codes_get_one_answer(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    terminal = await till_in_new_store(client, merchant)
    foreign = await issue_card(client, other_merchant, 1_000)
    good = codes.normalize_code((await issue_card(client, merchant, 1_000))["code"])
    typo = good[:-1] + next(s for s in codes.ALPHABET if s != good[-1])
    answers = [
        await client.post("/v1/cards/lookup", json={"code": code}, headers=terminal.headers)
        for code in (unknown_code(), foreign["code"], "ABC", typo, "' OR 1=1 --")
    ]
    assert {r.status_code for r in answers} == {404}
    assert len({r.content for r in answers}) == 1, [r.text for r in answers]
    genuine = await qr_payload(client, merchant, (await issue_card(client, merchant, 100))["id"])
    foreign_qr = await qr_payload(client, other_merchant, foreign["id"])
    forged = genuine[:-5] + ("A" if genuine[-5] != "A" else "B") + genuine[-4:]
    qr_answers = [
        await client.post("/v1/cards/lookup", json={"qr_payload": p}, headers=terminal.headers)
        for p in (foreign_qr, forged, genuine[:80])
    ]
    assert {r.status_code for r in qr_answers} == {404} and len({r.content for r in qr_answers}) == 1


async def test_failed_lookups_trip_the_limit_flag_the_terminal_and_recover(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    terminal = await till_in_new_store(client, merchant)
    card = await issue_card(client, merchant, 5_000)
    for _ in range(5):
        ok = await client.post("/v1/cards/lookup", json={"code": card["code"]}, headers=terminal.headers)
        assert ok.status_code == 200  # good lookups do not count
    for attempt in range(10):
        wrong = await client.post("/v1/cards/lookup", json={"code": unknown_code()}, headers=terminal.headers)
        assert wrong.status_code == 404, attempt
    # Now even the right code, and a redemption by code, wait.
    for response in (
        await client.post("/v1/cards/lookup", json={"code": card["code"]}, headers=terminal.headers),
        await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 100}, headers=terminal.keyed()
        ),
    ):
        assert response.status_code == 429 and response.json()["code"] == "rate_limited"
        assert response.headers["content-type"] == "application/problem+json"
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.json()["retry_after"] == int(response.headers["retry-after"])
    flagged = await staff_log(client, merchant, flagged="true")
    assert len(flagged) == 1 and flagged[0]["terminal"] == terminal.id
    assert flagged[0]["outcome"] == "invalid_code"
    limited = await staff_log(client, merchant, outcome="rate_limited")
    assert [e["action"] for e in limited] == ["redeem", "lookup"]
    shown = (await client.get(f"/v1/terminals/{terminal.id}", headers=merchant.headers)).json()
    assert shown["flagged_at"] is not None
    # A minute later (the failures aged by the test) the terminal works again.
    await db.execute("UPDATE failed_attempts SET created_at = created_at - interval '61 seconds'")
    recovered = await client.post("/v1/cards/lookup", json={"code": card["code"]}, headers=terminal.headers)
    assert recovered.status_code == 200 and recovered.json()["balance"] == 5_000


async def test_the_limit_counts_per_merchant_and_address_across_terminals_and_server_processes(
    client: httpx.AsyncClient,
    merchant: Merchant,
    other_merchant: Merchant,
    settings: Settings,
    server: LiveServer,
    db: asyncpg.Connection,
) -> None:
    store = await create_store(client, merchant)
    tills = [await new_terminal(client, merchant, store["id"]) for _ in range(3)]
    neighbour = await till_in_new_store(client, other_merchant)
    await db.execute(  # what the merchant's other tills at this address got wrong in the last minute
        "INSERT INTO failed_attempts (subject) SELECT $1 FROM generate_series(1, $2)",
        f"address:{merchant.id}:127.0.0.1",
        ratelimit.ADDRESS_LIMIT - 10,
    )
    second = LiveServer(settings).start()  # another server process on the same database
    try:
        async with httpx.AsyncClient(base_url=second.url, timeout=30) as other:
            for index in range(10):
                http, till = (client, tills[0]) if index % 2 else (other, tills[1])
                response = await http.post(
                    "/v1/cards/lookup", json={"qr_payload": "GC1" + "A" * 148}, headers=till.headers
                )
                assert response.status_code == 404
            # Neither terminal reached 10 by itself, but the merchant's address counter did; another
            # merchant's till at the same address is not stopped by it.
            fresh = await other.post(
                "/v1/cards/lookup", json={"code": unknown_code()}, headers=tills[2].headers
            )
            assert fresh.status_code == 429
            beside = await other.post(
                "/v1/cards/lookup", json={"code": unknown_code()}, headers=neighbour.headers
            )
            assert beside.status_code == 404
    finally:
        second.stop()


# -- the staff log -------------------------------------------------------------------------------------------


async def test_the_staff_log_records_every_action_and_refusal_but_never_a_code_or_token(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    store = await create_store(client, merchant, redeem_limit=5_000)
    clerk = await new_terminal(client, merchant, store["id"])
    card = await issue_card(client, merchant, 10_000)
    code = codes.normalize_code(card["code"])
    await client.post("/v1/cards/lookup", json={"code": card["code"]}, headers=clerk.headers)
    redeemed = (
        await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 1_500}, headers=clerk.keyed()
        )
    ).json()
    await client.post(
        "/v1/refunds", json={"redemption": redeemed["id"], "amount": 500}, headers=clerk.keyed()
    )
    # Refused inside the idempotency transaction, which rolls back: the record survives it.
    denied = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 6_000}, headers=clerk.keyed()
    )
    assert denied.status_code == 403
    wrong = code[:10] + "-WXYZ"
    await client.post("/v1/cards/lookup", json={"code": wrong}, headers=clerk.headers)
    short = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 4_999}, headers=clerk.keyed()
    )
    assert short.status_code == 201
    broke = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 4_900}, headers=clerk.keyed()
    )
    assert broke.json()["code"] == "insufficient_funds"

    entries = list(reversed(await staff_log(client, merchant, terminal=clerk.id)))
    summary = [(e["action"], e["outcome"], e["card"], e["amount"]) for e in entries]
    assert summary == [
        ("enroll", "ok", None, None),
        ("lookup", "ok", card["id"], None),
        ("redeem", "ok", card["id"], 1_500),
        ("refund", "ok", card["id"], 500),
        ("redeem", "store_limit_exceeded", None, 6_000),
        ("lookup", "invalid_code", None, None),
        ("redeem", "ok", card["id"], 4_999),
        ("redeem", "insufficient_funds", card["id"], 4_900),
    ]
    assert all(e["store"] == store["id"] and e["client_address"] == "127.0.0.1" for e in entries)
    assert entries[2]["activity"] == redeemed["id"] and entries[2]["currency"] == "CNY"
    assert entries[1]["code_last4"] == code[-4:] and entries[5]["code_last4"] == "WXYZ"
    dump = await db.fetchval("SELECT string_agg(s::text, '|') FROM staff_log s")
    assert code not in dump and code[:10] not in dump and clerk.token.split("_", 3)[3] not in dump
    with pytest.raises(asyncpg.RestrictViolationError):
        await db.execute("UPDATE staff_log SET outcome = 'ok'")
    with pytest.raises(asyncpg.RestrictViolationError):
        await db.execute("DELETE FROM staff_log")


async def test_the_staff_log_filters_pages_and_exports_csv(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    north = await create_store(client, merchant, name="North")
    south = await create_store(client, merchant, name="South")
    a = await new_terminal(client, merchant, north["id"])
    b = await new_terminal(client, merchant, south["id"])
    card = await issue_card(client, merchant, 10_000)
    for till in (a, a, b):
        await client.post("/v1/redemptions", json={"code": card["code"], "amount": 100}, headers=till.keyed())
    await client.post("/v1/cards/lookup", json={"code": "=HYPERLINK(1)"}, headers=b.headers)

    assert len(await staff_log(client, merchant, terminal=a.id, action="redeem")) == 2
    assert [e["terminal"] for e in await staff_log(client, merchant, store=south["id"])] == [b.id, b.id, b.id]
    assert len(await staff_log(client, merchant, outcome="invalid_code")) == 1
    everything = await staff_log(client, merchant)
    assert len(everything) == 6
    middle = everything[2]["created_at"]
    newer = await staff_log(client, merchant, created_gte=middle)
    older = await staff_log(client, merchant, created_lt=middle)
    assert len(newer) + len(older) == 6

    pages: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 4, **({"starting_after": cursor} if cursor else {})}
        page = (await client.get("/v1/staff_log", params=params, headers=merchant.headers)).json()
        pages += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert pages == [e["id"] for e in everything]

    export = await client.get("/v1/staff_log.csv", params={"store": south["id"]}, headers=merchant.headers)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert export.headers["x-export-truncated"] == "false"
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [r["action"] for r in rows] == ["enroll", "redeem", "lookup"]  # oldest first
    assert rows[1]["amount"] == "100" and rows[1]["card"] == card["id"] and rows[1]["outcome"] == "ok"
    assert rows[2]["outcome"] == "invalid_code" and rows[2]["code_last4"] == "RLNK"
    assert not any(cell.startswith("=") for row in rows for cell in row.values())
    bad = await client.get("/v1/staff_log", params={"starting_after": "nope"}, headers=merchant.headers)
    assert bad.status_code == 400


async def test_todays_redemptions_show_what_is_left_to_refund(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    store = await create_store(client, merchant)
    till = await new_terminal(client, merchant, store["id"])
    other_till = await new_terminal(client, merchant, store["id"])
    card = await issue_card(client, merchant, 10_000)
    first = (
        await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 1_000}, headers=till.keyed()
        )
    ).json()
    second = (
        await client.post(
            "/v1/redemptions", json={"code": card["code"], "amount": 2_000}, headers=till.keyed()
        )
    ).json()
    await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 50}, headers=other_till.keyed()
    )
    await client.post("/v1/refunds", json={"redemption": first["id"]}, headers=till.keyed())
    await client.post("/v1/refunds", json={"redemption": second["id"], "amount": 500}, headers=till.keyed())
    listed = (await client.get("/v1/terminal/redemptions", headers=till.headers)).json()["data"]
    assert [(r["id"], r["amount_taken"], r["refundable_amount"], r["can_refund"]) for r in listed] == [
        (second["id"], 2_000, 1_500, True),
        (first["id"], 1_000, 0, False),
    ]
    assert listed[0]["code_last4"] == card["code_last4"]

"""The wallet: sessions the shop asks for, an owner's cards grouped, ordered, paged and totalled, gifts
waiting and sent, and the actions from the wallet — each only ever about the session's own owner."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from PIL import Image

from giftcards.gifting import gift_links
from giftcards.value import cards
from giftcards.wallet import holders as wallet
from tests.support.api import Merchant, bearer, with_key
from tests.support.designs import create_design
from tests.support.gifts import GIFTER, buy, card_held_by, claim, token_of
from tests.support.servers import eventually
from tests.support.wallet import open_wallet_session

ALICE = "o_alice_openid_0002"
CAROL = "o_carol_openid_0003"
DAVE = "o_dave_openid_0004"
FAR = datetime.max.replace(tzinfo=UTC)


# -- helpers ---------------------------------------------------------------------------------------------


async def every_card(
    client: httpx.AsyncClient, token: str, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """All pages of the card list, following next_cursor."""
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit, **({"status": status} if status else {})}
    while True:
        response = await client.get("/v1/wallet/cards", params=params, headers=bearer(token))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        seen += page["data"]
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            return seen
        params["cursor"] = page["next_cursor"]


async def redeem(client: httpx.AsyncClient, merchant: Merchant, card_id: str, amount: int) -> None:
    code = (await client.get(f"/v1/cards/{card_id}/code", headers=merchant.headers)).json()["code"]
    paid = await client.post(
        "/v1/redemptions", json={"code": code, "amount": amount}, headers=merchant.headers
    )
    assert paid.status_code == 201, paid.text


async def change(client: httpx.AsyncClient, merchant: Merchant, card_id: str, kind: str, **body: Any) -> None:
    response = await client.post(f"/v1/cards/{card_id}/{kind}", json=body, headers=with_key(merchant))
    assert response.status_code == 201, response.text


# -- what an owner sees --------------------------------------------------------------------------------


async def test_an_owner_sees_exactly_their_own_cards_grouped_ordered_and_totalled(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant, db: asyncpg.Connection
) -> None:
    in_3_days = await create_design(client, merchant, card_validity_days=3)
    in_10_days = await create_design(client, merchant, card_validity_days=10)
    in_30_days = await create_design(client, merchant, card_validity_days=30)
    a_day = await create_design(client, merchant, card_validity_days=1)
    lasting = await create_design(client, merchant)
    hkd = await create_design(client, merchant, currency="HKD", denominations=[50000])

    soon = await card_held_by(client, merchant, in_3_days["id"], ALICE)
    later = await card_held_by(client, merchant, in_10_days["id"], ALICE)
    await redeem(client, merchant, later, 2000)  # partly spent: still has value
    blocked = await card_held_by(client, merchant, in_30_days["id"], ALICE, 131400)
    await change(client, merchant, blocked, "block")
    forever = sorted(
        [
            await card_held_by(client, merchant, lasting["id"], ALICE),
            await card_held_by(client, merchant, lasting["id"], ALICE, 131400),
            await card_held_by(client, merchant, hkd["id"], ALICE, 50000),
        ]
    )
    used_up = await card_held_by(client, merchant, lasting["id"], ALICE)
    await redeem(client, merchant, used_up, 52000)
    past_due = await card_held_by(client, merchant, a_day["id"], ALICE)
    written_off = await card_held_by(client, merchant, a_day["id"], ALICE)
    cancelled = await card_held_by(client, merchant, lasting["id"], ALICE)
    await change(client, merchant, cancelled, "deactivate", reason="refunded order")
    # A day passes for two of them (moved, not waited for); the worker writes one off, not yet the other.
    await db.execute("UPDATE cards SET expires_at = now() - interval '1 minute' WHERE id = $1", written_off)
    assert await cards.expire_due(db) == 1
    await db.execute("UPDATE cards SET expires_at = now() - interval '1 minute' WHERE id = $1", past_due)
    # What must not show: a card of Alice's on its way to a friend, Carol's card, Alice at another shop.
    given = await buy(client, merchant, lasting["id"], gifter_id=ALICE)
    carols = await card_held_by(client, merchant, lasting["id"], CAROL)
    elsewhere = await card_held_by(
        client, other_merchant, (await create_design(client, other_merchant))["id"], ALICE
    )

    token = (await open_wallet_session(client, merchant, ALICE))["token"]
    shown = await every_card(client, token, limit=4)
    ids = [card["id"] for card in shown]
    assert ids == [soon, later, blocked, *forever, cancelled, written_off, past_due, used_up]
    assert not {given["card"]["id"], carols, elsewhere} & set(ids)
    by_id = {card["id"]: card for card in shown}
    assert [by_id[i]["status"] for i in ids] == ["active"] * 6 + [
        "deactivated",
        "expired",
        "expired",
        "used_up",
    ]
    assert (by_id[blocked]["state"], by_id[blocked]["can_pay"], by_id[blocked]["can_send"]) == (
        "blocked",
        False,
        False,
    )
    assert (by_id[later]["balance"], by_id[later]["can_pay"], by_id[later]["can_send"]) == (
        50000,
        True,
        False,
    )
    assert (by_id[soon]["can_send"], by_id[soon]["from_name"], by_id[soon]["design"]["id"]) == (
        True,
        "小明",
        in_3_days["id"],
    )
    assert (
        by_id[past_due]["state"] == "expired" and by_id[past_due]["balance"] == 52000
    )  # not written off yet
    assert by_id[written_off]["balance"] == 0 and by_id[used_up]["balance_text"] == "¥0.00"
    assert by_id[forever[0]]["expires_at"] is None and by_id[soon]["expires_at"] < by_id[later]["expires_at"]
    assert "code" not in by_id[soon] and len(by_id[soon]["code_last4"]) == 4

    filtered = {
        status: [c["id"] for c in await every_card(client, token, status)] for status in wallet.FILTERS
    }
    assert filtered == {
        "active": [soon, later, blocked, *forever],
        "used_up": [used_up],
        "expired": [written_off, past_due],
    }

    overview = (await client.get("/v1/wallet", headers=bearer(token))).json()
    assert overview["merchant"]["name"] == "Maison Lumière"
    assert overview["counts"] == {
        "active": 6,
        "used_up": 1,
        "expired": 2,
        "deactivated": 1,
        "gifts_waiting": 0,
    }
    # What can be spent now: active cards with value (the blocked one is not, the expired one no longer).
    assert overview["totals"] == [
        {
            "currency": "CNY",
            "balance": 52000 + 50000 + 52000 + 131400,
            "balance_text": "¥2,854.00",
            "cards": 4,
        },
        {"currency": "HKD", "balance": 50000, "balance_text": "HK$500.00", "cards": 1},
    ]
    sent = (await client.get("/v1/wallet/gifts/sent", headers=bearer(token))).json()["data"]
    assert [(g["id"], g["state"]) for g in sent] == [(given["id"], "waiting")]

    picture = await client.get(urlsplit(by_id[soon]["thumbnail_url"]).path)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(picture.content)) as thumbnail:
        assert thumbnail.width == 240
    base = by_id[soon]["thumbnail_url"].rsplit("/cards/", 1)[0]
    assert (await client.get(f"{base}/cards/{carols}.png")).status_code == 404
    assert (await client.get(f"{base}/cards/{elsewhere}.png")).status_code == 404

    carol = (await open_wallet_session(client, merchant, CAROL))["token"]
    assert [c["id"] for c in await every_card(client, carol)] == [carols]
    assert (await client.get("/v1/wallet", headers=bearer(carol))).json()["totals"][0]["balance"] == 52000
    assert (await client.get("/v1/wallet/gifts/sent", headers=bearer(carol))).json()["data"] == []
    nobody = (await open_wallet_session(client, merchant, DAVE))["token"]
    assert await every_card(client, nobody) == []
    empty = (await client.get("/v1/wallet", headers=bearer(nobody))).json()
    assert empty["totals"] == [] and set(empty["counts"].values()) == {0}
    theirs = (await open_wallet_session(client, other_merchant, ALICE))["token"]
    assert [c["id"] for c in await every_card(client, theirs)] == [elsewhere]


async def test_pagination_over_250_cards_returns_each_exactly_once_in_order(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    batch = await client.post(
        "/v1/card_batches", json={"count": 250, "amount": 1000}, headers=with_key(merchant)
    )
    assert batch.status_code == 201
    # Hand the batch to Alice with many equal expiry dates (ties are broken by id), no expiry for every
    # fifth card and a lapsed one for every seventh; all share one created_at (ties again).
    await db.execute(
        """WITH numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM cards WHERE batch_id = $1)
           UPDATE cards c SET owner_id = $2, expires_at = CASE
               WHEN n % 5 = 0 THEN NULL
               WHEN n % 7 = 0 THEN now() - interval '1 hour'
               ELSE date_trunc('day', now()) + make_interval(days => (n % 13)::int + 1) END
           FROM numbered WHERE c.id = numbered.id""",
        batch.json()["id"],
        ALICE,
    )
    spent = await db.fetch(
        """SELECT id FROM cards WHERE batch_id = $1 AND expires_at > now() ORDER BY id LIMIT 30""",
        batch.json()["id"],
    )
    await asyncio.gather(
        *(change(client, merchant, row["id"], "adjust", amount=-1000, reason="used") for row in spent)
    )
    rows = await db.fetch("SELECT *, now() AS now FROM cards WHERE owner_id = $1", ALICE)
    status = {
        row["id"]: wallet.card_status(row["state"], row["balance"], row["expires_at"], row["now"])
        for row in rows
    }
    with_value = sorted(
        (r for r in rows if status[r["id"]] == "active"), key=lambda r: (r["expires_at"] or FAR, r["id"])
    )
    rest = sorted(
        (r for r in rows if status[r["id"]] != "active"),
        key=lambda r: (r["created_at"], r["id"]),
        reverse=True,
    )
    expected = [r["id"] for r in with_value + rest]
    assert len(with_value) > 150 and {status[i] for i in expected} == {"active", "used_up", "expired"}

    token = (await open_wallet_session(client, merchant, ALICE))["token"]
    for limit in (7, 100):
        shown = [card["id"] for card in await every_card(client, token, limit=limit)]
        assert len(shown) == len(set(shown)) == 250
        assert shown == expected
    for name in wallet.FILTERS:
        shown = [card["id"] for card in await every_card(client, token, name, limit=9)]
        assert shown == [i for i in expected if status[i] == name]

    # A cursor is a position in this owner's list, nothing more: a malformed one or one of another filter
    # is refused, and the same cursor in another owner's session shows only that owner's cards.
    page = (await client.get("/v1/wallet/cards", params={"limit": 5}, headers=bearer(token))).json()
    for cursor in ("nonsense", "W10", page["next_cursor"][:-2] + "zz"):
        bad = await client.get("/v1/wallet/cards", params={"cursor": cursor}, headers=bearer(token))
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "cursor"
    other_filter = await client.get(
        "/v1/wallet/cards", params={"cursor": page["next_cursor"], "status": "expired"}, headers=bearer(token)
    )
    assert other_filter.status_code == 400
    carol = (await open_wallet_session(client, merchant, CAROL))["token"]
    foreign = await client.get(
        "/v1/wallet/cards", params={"cursor": page["next_cursor"]}, headers=bearer(carol)
    )
    assert foreign.status_code == 200 and foreign.json()["data"] == []


async def test_each_page_is_an_index_range_scan_without_a_sort(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    """What keeps an owner with hundreds of cards fast: a page reads only its own rows, in index order,
    starting at the cursor — with the values bound (custom plan) and as the driver's prepared statement
    may run it (generic plan)."""
    await db.execute("SET enable_seqscan = off")  # the test's tables are tiny; a big one behaves so anyway
    await db.execute("PREPARE value_page AS " + wallet.VALUE_PAGE)
    await db.execute("PREPARE rest_page AS " + wallet.REST_PAGE)
    bound, generic = [], []
    for statement, params in (
        (wallet.VALUE_PAGE, (merchant.id, ALICE, wallet.MINUS_INFINITY, "", 21)),
        (wallet.REST_PAGE, (merchant.id, ALICE, None, wallet.INFINITY, "", 21)),
    ):
        bound.append(json.loads(await db.fetchval("EXPLAIN (FORMAT JSON) " + statement, *params)))
    await db.execute("SET plan_cache_mode = force_generic_plan")
    for name, args in (("value_page", "'-infinity', '', 21"), ("rest_page", "NULL, 'infinity', '', 21")):
        query = f"EXPLAIN (FORMAT JSON) EXECUTE {name}('{merchant.id}', '{ALICE}', {args})"
        generic.append(json.loads(await db.fetchval(query)))
    for plans in (bound, generic):
        for plan, index in zip(plans, ("cards_wallet_with_value", "cards_wallet_by_owner"), strict=True):
            nodes = list(_plan_nodes(plan[0]["Plan"]))
            scans = [node for node in nodes if node.get("Index Name") == index]
            assert scans, nodes
            assert not any(node["Node Type"] in ("Sort", "Incremental Sort") for node in nodes), nodes
            assert "ROW(" in scans[0]["Index Cond"], scans  # the cursor bounds the scan; it is no filter


def _plan_nodes(node: dict[str, Any]) -> Any:
    yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child)


# -- gifts in the wallet -------------------------------------------------------------------------------


async def test_a_gift_addressed_to_an_owner_waits_in_their_wallet_and_is_claimed_there(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant)
    addressed = await buy(client, merchant, design["id"], recipient_owner_id=ALICE, message="给你 <i>x</i>")
    assert addressed["recipient_owner_id"] == ALICE
    later = datetime.now(UTC) + timedelta(days=2)
    scheduled = await buy(
        client, merchant, design["id"], recipient_owner_id=ALICE, opens_at=later.isoformat(), message="秘密"
    )
    by_link_only = await buy(client, merchant, design["id"])  # shows in no wallet until it is claimed
    alice = (await open_wallet_session(client, merchant, ALICE))["token"]
    carol = (await open_wallet_session(client, merchant, CAROL))["token"]
    giver = (await open_wallet_session(client, merchant, GIFTER))["token"]

    waiting = (await client.get("/v1/wallet/gifts/received", headers=bearer(alice))).json()["data"]
    assert [(g["id"], g["state"], g["can_claim"]) for g in waiting] == [
        (scheduled["id"], "scheduled", False),
        (addressed["id"], "waiting", True),
    ]
    assert waiting[1]["message"] == "给你 <i>x</i>" and waiting[1]["amount_text"] == "¥520.00"
    assert "message" not in waiting[0] and "amount" not in waiting[0] and waiting[0]["thumbnail_url"] is None
    assert "gifter_id" not in waiting[1] and "card" not in waiting[1]
    assert (await client.get(urlsplit(waiting[1]["thumbnail_url"]).path)).status_code == 200
    assert (await client.get("/v1/wallet", headers=bearer(alice))).json()["counts"]["gifts_waiting"] == 2
    assert (await client.get("/v1/wallet/gifts/received", headers=bearer(carol))).json()["data"] == []
    base = waiting[1]["thumbnail_url"].rsplit("/gifts/", 1)[0]
    assert (await client.get(f"{base}/gifts/{scheduled['id']}.png")).status_code == 404  # still a surprise
    assert (await client.get(f"{base}/gifts/{by_link_only['id']}.png")).status_code == 404

    for gift, owner in ((addressed, carol), (by_link_only, alice)):  # not addressed to them
        refused = await client.post(f"/v1/wallet/gifts/{gift['id']}/claim", headers=bearer(owner))
        assert refused.status_code == 404 and refused.json()["code"] == "gift_not_found"
    early = await client.post(f"/v1/wallet/gifts/{scheduled['id']}/claim", headers=bearer(alice))
    assert early.status_code == 409 and early.json()["code"] == "gift_not_yet_open"

    claimed = await client.post(f"/v1/wallet/gifts/{addressed['id']}/claim", headers=bearer(alice, "k-1"))
    assert claimed.status_code == 200 and claimed.json()["card"]["balance"] == 52000
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", addressed["card"]["id"]) == ALICE
    page = await client.get(f"/v1/card_pages/{token_of(claimed.json()['card_url'])}")
    assert page.status_code == 200
    replay = await client.post(f"/v1/wallet/gifts/{addressed['id']}/claim", headers=bearer(alice, "k-1"))
    assert replay.json() == claimed.json() and replay.headers["idempotent-replayed"] == "true"
    again = await client.post(f"/v1/wallet/gifts/{addressed['id']}/claim", headers=bearer(alice))
    assert again.status_code == 409 and again.json()["code"] == "gift_already_claimed"
    assert (await claim(client, addressed["link"], CAROL)).json()["code"] == "gift_already_claimed"

    assert [
        g["id"] for g in (await client.get("/v1/wallet/gifts/received", headers=bearer(alice))).json()["data"]
    ] == [scheduled["id"]]
    assert [c["id"] for c in await every_card(client, alice)] == [addressed["card"]["id"]]
    sent = (await client.get("/v1/wallet/gifts/sent", headers=bearer(giver))).json()["data"]
    assert [(g["id"], g["state"]) for g in sent] == [
        (by_link_only["id"], "waiting"),
        (scheduled["id"], "scheduled"),
        (addressed["id"], "claimed"),
    ]
    assert all("recipient_id" not in g and "recipient_owner_id" not in g for g in sent)  # nobody's openid
    assert (sent[2]["can_revoke"], sent[1]["can_revoke"]) == (False, True)
    first = (await client.get("/v1/wallet/gifts/sent", params={"limit": 2}, headers=bearer(giver))).json()
    assert [g["id"] for g in first["data"]] == [by_link_only["id"], scheduled["id"]] and first["has_more"]
    rest = await client.get(
        "/v1/wallet/gifts/sent", params={"starting_after": scheduled["id"]}, headers=bearer(giver)
    )
    assert [g["id"] for g in rest.json()["data"]] == [addressed["id"]] and not rest.json()["has_more"]


async def test_gifts_waiting_for_an_owner_come_in_pages(
    client: httpx.AsyncClient, merchant: Merchant
) -> None:
    design = await create_design(client, merchant)
    made = [(await buy(client, merchant, design["id"], recipient_owner_id=ALICE))["id"] for _ in range(3)]
    other = await buy(client, merchant, design["id"], recipient_owner_id=CAROL)
    alice = (await open_wallet_session(client, merchant, ALICE))["token"]
    first = await client.get("/v1/wallet/gifts/received", params={"limit": 2}, headers=bearer(alice))
    assert [g["id"] for g in first.json()["data"]] == made[:0:-1] and first.json()["has_more"]
    rest = await client.get(
        "/v1/wallet/gifts/received", params={"limit": 2, "starting_after": made[1]}, headers=bearer(alice)
    )
    assert [g["id"] for g in rest.json()["data"]] == [made[0]] and not rest.json()["has_more"]
    for cursor in (other["id"], "gift_aaaaaaaaaaaaaaaa", "nonsense"):  # Carol's gift is no place in it
        refused = await client.get(
            "/v1/wallet/gifts/received", params={"starting_after": cursor}, headers=bearer(alice)
        )
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "starting_after"


async def test_the_gifter_withdraws_and_reshares_from_the_wallet_and_nobody_else_can(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant)
    gift = await buy(client, merchant, design["id"])
    giver = (await open_wallet_session(client, merchant, GIFTER))["token"]
    carol = (await open_wallet_session(client, merchant, CAROL))["token"]

    link = await client.get(f"/v1/wallet/gifts/{gift['id']}/link", headers=bearer(giver))
    assert link.status_code == 200 and link.json()["url"] == gift["link"]
    for request in (
        client.get(f"/v1/wallet/gifts/{gift['id']}/link", headers=bearer(carol)),
        client.post(f"/v1/wallet/gifts/{gift['id']}/revoke", headers=bearer(carol)),
    ):
        refused = await request
        assert refused.status_code == 404 and refused.json()["code"] == "gift_not_found"
    withdrawn = await client.post(f"/v1/wallet/gifts/{gift['id']}/revoke", headers=bearer(giver))
    assert withdrawn.status_code == 200
    assert (withdrawn.json()["state"], withdrawn.json()["can_revoke"]) == ("revoked", False)
    assert (await claim(client, gift["link"], CAROL)).json()["code"] == "gift_revoked"
    back = await every_card(client, giver)
    assert [(c["id"], c["status"], c["can_send"]) for c in back] == [(gift["card"]["id"], "active", True)]
    twice = await client.post(f"/v1/wallet/gifts/{gift['id']}/revoke", headers=bearer(giver))
    assert twice.status_code == 409 and twice.json()["code"] == "gift_revoked"
    gone = await client.get(f"/v1/wallet/gifts/{gift['id']}/link", headers=bearer(giver))
    assert gone.status_code == 409

    # A gift nobody claims in time shows as returned at once, and its card is back once the worker passes.
    unclaimed = await buy(client, merchant, design["id"])
    await db.execute(
        "UPDATE gifts SET opens_at = now() - interval '3 days', expires_at = now() - interval '1 minute' "
        "WHERE id = $1",
        unclaimed["id"],
    )
    sent = (await client.get("/v1/wallet/gifts/sent", headers=bearer(giver))).json()["data"]
    assert [(g["id"], g["state"], g["can_revoke"], g["can_share"]) for g in sent] == [
        (unclaimed["id"], "returned", False, False),
        (gift["id"], "revoked", False, False),
    ]
    assert await gift_links.return_expired(db) == 1
    assert {c["id"] for c in await every_card(client, giver)} == {gift["card"]["id"], unclaimed["card"]["id"]}


async def test_a_held_card_is_passed_on_once_and_its_old_links_stop_working(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant)
    card_id = await card_held_by(client, merchant, design["id"], ALICE)
    carols = await card_held_by(client, merchant, design["id"], CAROL)
    alice = (await open_wallet_session(client, merchant, ALICE, display_name="Alice"))["token"]
    opened = await client.post(f"/v1/wallet/cards/{card_id}/open", headers=bearer(alice))
    assert opened.status_code == 201 and opened.json()["wechat_url"] is None
    page_token = token_of(opened.json()["url"])
    assert (await client.get(f"/v1/card_pages/{page_token}/qr")).status_code == 200
    for path in (
        f"/v1/wallet/cards/{carols}/open",
        f"/v1/wallet/cards/{carols}/gifts",
        "/v1/wallet/cards/x/open",
    ):
        refused = await client.post(
            path, json={"sender_name": "A", "recipient_name": "B"}, headers=bearer(alice)
        )
        assert refused.status_code == 404 and refused.json()["code"] == "card_not_found"

    body = {
        "sender_name": "Alice",
        "recipient_name": "Bo",
        "message": "for you 🎁",
        "recipient_owner_id": DAVE,
    }
    first, second = await asyncio.gather(
        client.post(f"/v1/wallet/cards/{card_id}/gifts", json=body, headers=bearer(alice, "send-1")),
        client.post(f"/v1/wallet/cards/{card_id}/gifts", json=body, headers=bearer(alice, "send-2")),
    )
    assert sorted([first.status_code, second.status_code]) == [201, 409]
    made, refused = (first, second) if first.status_code == 201 else (second, first)
    assert refused.json()["code"] == "card_in_transit"
    gift = made.json()
    assert (gift["state"], gift["amount"], gift["object"]) == ("waiting", 52000, "sent_gift")
    assert gift["link"].startswith("http") and "code" not in gift and "code_last4" not in gift
    key = "send-1" if made is first else "send-2"
    replay = await client.post(f"/v1/wallet/cards/{card_id}/gifts", json=body, headers=bearer(alice, key))
    assert replay.status_code == 201 and replay.json() == gift
    assert await db.fetchval("SELECT count(*) FROM gifts WHERE card_id = $1", card_id) == 2

    assert await every_card(client, alice) == []  # on its way: nobody holds it
    assert (await client.get(f"/v1/card_pages/{page_token}")).status_code == 404
    sent = (await client.get("/v1/wallet/gifts/sent", headers=bearer(alice))).json()["data"]
    assert [(g["id"], g["state"]) for g in sent] == [(gift["id"], "waiting")]
    dave = (await open_wallet_session(client, merchant, DAVE))["token"]
    waiting = (await client.get("/v1/wallet/gifts/received", headers=bearer(dave))).json()["data"]
    assert [g["id"] for g in waiting] == [gift["id"]] and waiting[0]["sender_name"] == "Alice"

    assert (await claim(client, gift["link"], CAROL)).status_code == 200  # the link works for anyone
    sent = (await client.get("/v1/wallet/gifts/sent", headers=bearer(alice))).json()["data"]
    assert sent[0]["state"] == "claimed" and sent[0]["claimed_at"] is not None
    assert (await client.get("/v1/wallet/gifts/received", headers=bearer(dave))).json()["data"] == []
    carol = (await open_wallet_session(client, merchant, CAROL))["token"]
    assert {c["id"] for c in await every_card(client, carol)} == {card_id, carols}


async def test_the_wechat_link_is_offered_only_where_the_merchant_has_wechat(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant)
    card_id = await card_held_by(client, merchant, design["id"], ALICE)
    alice = (await open_wallet_session(client, merchant, ALICE))["token"]
    assert (await client.get("/v1/wallet", headers=bearer(alice))).json()["wechat"] is False
    await db.execute(
        """INSERT INTO wechat_accounts (merchant_id, appid, secret_sealed, callback_token_sealed, base_url)
           VALUES ($1, 'wx0123456789abcdef', '\\x00', '\\x00', 'http://127.0.0.1:1/')""",
        merchant.id,
    )
    assert (await client.get("/v1/wallet", headers=bearer(alice))).json()["wechat"] is True
    opened = (await client.post(f"/v1/wallet/cards/{card_id}/open", headers=bearer(alice))).json()
    assert opened["wechat_url"] == opened["url"] + "/wechat"
    page = await client.get(urlsplit(opened["wechat_url"]).path)
    assert page.status_code == 200 and "wechat-card-qr" in page.text


# -- sessions --------------------------------------------------------------------------------------------


async def test_a_session_link_is_short_lived_bound_to_its_owner_and_stored_only_hashed(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    made = await open_wallet_session(client, merchant, ALICE, display_name="爱丽丝")
    assert made["object"] == "wallet_session" and made["state"] == "active" and made["owner_id"] == ALICE
    assert urlsplit(made["url"]).path == f"/w/{made['token']}" and made["token"].startswith("gw_")
    lifetime = datetime.fromisoformat(made["expires_at"]) - datetime.fromisoformat(made["created_at"])
    assert timedelta(minutes=29) < lifetime <= timedelta(minutes=30)
    longer = await open_wallet_session(client, merchant, ALICE, expires_in_minutes=120)
    assert datetime.fromisoformat(longer["expires_at"]) - datetime.fromisoformat(
        longer["created_at"]
    ) == timedelta(minutes=120)
    for minutes in (4, 1441, 0):
        refused = await client.post(
            "/v1/wallet_sessions",
            json={"owner_id": ALICE, "expires_in_minutes": minutes},
            headers=with_key(merchant),
        )
        assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "expires_in_minutes"
    stored = await db.fetchval(
        "SELECT count(*) FROM wallet_sessions s WHERE strpos(s::text, $1) > 0",
        made["token"].removeprefix("gw_"),
    )
    assert stored == 0
    with pytest.raises(asyncpg.CheckViolationError, match="wallet_session_lifetime"):
        await db.execute(
            "UPDATE wallet_sessions SET expires_at = created_at + interval '25 hours' WHERE id = $1",
            made["id"],
        )
    page = await client.get(urlsplit(made["url"]).path)
    assert page.status_code == 200 and 'id="wallet"' in page.text and "Maison Lumière" in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.text.count("<script") == 2  # the labels as JSON data and /static/wallet/wallet.js
    assert '<script type="application/json" id="wallet-texts">' in page.text
    for path, media in (
        ("/static/wallet/wallet.js", "text/javascript"),
        ("/static/wallet/wallet.css", "text/css"),
    ):
        asset = await client.get(path)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
    zh = await client.get(urlsplit(made["url"]).path, headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "我的卡包" in zh.text and 'lang="zh-CN"' in zh.text


async def test_an_expired_revoked_or_edited_session_link_is_refused(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant, db: asyncpg.Connection
) -> None:
    design = await create_design(client, merchant)
    card_id = await card_held_by(client, merchant, design["id"], ALICE)
    made = await open_wallet_session(client, merchant, ALICE)
    token = made["token"]
    assert (await client.get("/v1/wallet/cards", headers=bearer(token))).status_code == 200

    edited = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        token[:-2],
        token + "x",
        "gw_" + "A" * 32,
        token.replace("gw_", "gk_"),
        merchant.api_key,  # the shop's own key opens no wallet
    ]
    for forged in edited:
        api = await client.get("/v1/wallet/cards", headers=bearer(forged))
        assert api.status_code == 401 and api.headers["content-type"] == "application/problem+json", forged
        assert api.json()["code"] == "unauthenticated" and token not in api.text
        page = await client.get(f"/w/{forged}")
        assert page.status_code == 404 and card_id not in page.text
    page = await client.get(f"/w/{edited[0]}")
    assert (
        page.status_code == 404 and "not valid or has expired" in page.text and 'id="wallet"' not in page.text
    )
    base = f"/w/{edited[0]}/cards/{card_id}.png"
    assert (await client.get(base)).status_code == 404
    # The wallet token is no API key either.
    assert (await client.get("/v1/cards", headers=bearer(token))).status_code == 401

    # Half an hour later (moved, not waited for): the same link is refused, the page says so kindly.
    await db.execute(
        """UPDATE wallet_sessions SET created_at = now() - interval '31 minutes',
                                      expires_at = now() - interval '1 minute' WHERE id = $1""",
        made["id"],
    )
    expired = await client.get("/v1/wallet", headers=bearer(token))
    assert expired.status_code == 401 and expired.headers["www-authenticate"] == "Bearer"
    page = await client.get(urlsplit(made["url"]).path)
    assert page.status_code == 404 and "expired" in page.text and card_id not in page.text
    assert (await client.get(f"/w/{token}/cards/{card_id}.png")).status_code == 404
    sent = await client.post(
        f"/v1/wallet/cards/{card_id}/gifts",
        json={"sender_name": "a", "recipient_name": "b"},
        headers=bearer(token),
    )
    assert sent.status_code == 401
    assert await db.fetchval("SELECT owner_id FROM cards WHERE id = $1", card_id) == ALICE

    # The shop ends a session early; another shop cannot end (or see) it.
    live = await open_wallet_session(client, merchant, ALICE)
    foreign = await client.post(f"/v1/wallet_sessions/{live['id']}/revoke", headers=with_key(other_merchant))
    assert foreign.status_code == 404
    assert (await client.get("/v1/wallet", headers=bearer(live["token"]))).status_code == 200
    ended = await client.post(f"/v1/wallet_sessions/{live['id']}/revoke", headers=with_key(merchant))
    assert ended.status_code == 200 and ended.json()["state"] == "revoked" and "token" not in ended.json()
    assert (await client.get("/v1/wallet", headers=bearer(live["token"]))).status_code == 401


async def test_wallet_secrets_never_reach_the_access_log(
    client: httpx.AsyncClient, merchant: Merchant, caplog: pytest.LogCaptureFixture
) -> None:
    design = await create_design(client, merchant)
    card_id = await card_held_by(client, merchant, design["id"], ALICE)
    with caplog.at_level(logging.DEBUG):
        made = await open_wallet_session(client, merchant, ALICE)
        token = made["token"]
        await client.get(f"/w/{token}")
        await client.get(f"/w/{token}/cards/{card_id}.png")
        await client.get("/v1/wallet/cards", headers=bearer(token))
        await client.get("/v1/wallet", headers=bearer(token + "x"))
        await eventually(lambda: any(r.getMessage() == "GET /v1/wallet 401" for r in caplog.records))
    served = [r for r in caplog.records if r.name.startswith(("giftcards", "uvicorn"))]  # not the client's
    text = "\n".join(record.getMessage() + json.dumps(record.__dict__, default=str) for record in served)
    assert "GET /w/… 200" in text
    assert token.removeprefix("gw_") not in text

"""Merchant B reaches nothing of merchant A's: every operation that names a resource, taken from the API
registry, is called with B's credentials (API key, a till's token, a wallet or customise link of B's)
and A's real ids. Each answers 404 and A's rows are unchanged. A new route with a path parameter is
probed without anyone writing a probe for it, or this file fails until it can be."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from PIL import Image

from giftcards.app import build_api
from giftcards.web.routing import Operation
from tests.support.api import Merchant, bearer, issue_card, with_key
from tests.support.designs import create_design
from tests.support.gifts import buy, claimed
from tests.support.terminals import Terminal, till_in_new_store, unknown_code
from tests.support.wallet import customise_token, open_customise_session, open_wallet_session
from tests.support.wechat_callbacks import CALLBACK_TOKEN

HOLDER = "o_holder_openid_0001"  # the same person (one openid) is a customer of both merchants
OPERATIONS = build_api().operations
PARAMETER = re.compile(r"{(\w+)}")

# Parameters that are secrets, not resource ids: whoever holds the link is its audience, so there is no
# "other merchant" to refuse. An operation whose only parameters are secrets is not probed; one that
# names a resource beside its secret (/w/{token}/cards/{card_id}.png) is, with B's link.
SECRETS = {"token", "secret"}
# Operations with a resource parameter that no merchant owns, each with why.
EXEMPT = {
    # The platform admin's QR signing keys belong to no merchant; an API key cannot call it at all.
    "POST /v1/qr_keys/{kid}/retire": "platform admin, not a tenant operation",
    # WeChat's own callbacks: {merchant_id} says whose callback token checks WeChat's signature; what a
    # forged one gets is tested in tests/wechat/test_callbacks.py and tests/reliability/test_callback_body.py.
    "GET /wechat/callback/{merchant_id}": "authenticated by the merchant's own WeChat signature",
    "POST /wechat/callback/{merchant_id}": "authenticated by the merchant's own WeChat signature",
}
# Which of A's resources a parameter names; `session_id` depends on the path it is in.
RESOURCES = {
    "key_id": "api_key",
    "batch_id": "batch",
    "card_id": "card",
    "activity_id": "activity",
    "store_id": "store",
    "terminal_id": "terminal",
    "design": "design",
    "design_id": "design",
    "image_id": "image",
    "gift_id": "gift",
    "message_id": "wechat_message",
    "discrepancy_id": "wechat_discrepancy",
}
SESSIONS = {"/v1/customise_sessions/": "customise_session", "/v1/wallet_sessions/": "wallet_session"}
# Whose ids or code must not appear in any of B's lists.
SHOWN = ("card", "code", "design", "gift", "store", "terminal", "image", "batch", "api_key")
CREDENTIALS = ("api_key", "terminal", "wallet", "link")  # the ways a caller of B's can come

# Bodies valid enough to reach the lookup: a 400 would prove nothing, so the probe refuses one.
BODIES: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "POST /v1/cards/{card_id}/load": lambda a: {"amount": 1},
    "POST /v1/cards/{card_id}/adjust": lambda a: {"amount": -1, "reason": "probe"},
    "POST /v1/stores/{store_id}": lambda a: {"name": "Taken"},
    "POST /v1/terminals/{terminal_id}": lambda a: {"label": "Taken"},
    "POST /v1/wechat/designs/{design}/sync": lambda a: {"logo_url": "https://mmbiz.qpic.cn/logo.png"},
    "POST /v1/designs/{design_id}": lambda a: {"name": "Taken"},
    "POST /v1/gifts/{gift_id}/revoke": lambda a: {"owner_id": HOLDER},
    "POST /v1/cards/{card_id}/gifts": lambda a: {
        "owner_id": HOLDER,
        "sender_name": "B",
        "recipient_name": "C",
    },
    "POST /v1/cards/{card_id}/access_links": lambda a: {"owner_id": HOLDER},
    "POST /v1/wallet/cards/{card_id}/gifts": lambda a: {"sender_name": "B", "recipient_name": "C"},
}
# Operations without a path parameter that name one of A's resources in their body.
NAMED_IN_BODY: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "POST /v1/cards/lookup": lambda a: {"code": a["code"]},
    "POST /v1/redemptions": lambda a: {"code": a["code"], "amount": 1},
    "POST /v1/refunds": lambda a: {"redemption": a["activity"]},
    "POST /v1/terminal/cards/block": lambda a: {"code": a["code"]},
    "POST /v1/terminals": lambda a: {"store": a["store"], "label": "Taken"},
    "POST /v1/cards": lambda a: {"amount": 100, "design_id": a["design"]},
    "POST /v1/card_batches": lambda a: {"count": 1, "amount": 100, "design_id": a["design"]},
    "POST /v1/card_images/preview": lambda a: {"design_id": a["design"], "amount": 52000},
    "POST /v1/gift_purchases": lambda a: {
        "design_id": a["design"],
        "amount": 52000,
        "gifter_id": HOLDER,
        "sender_name": "B",
        "recipient_name": "C",
    },
    "POST /v1/customise/{token}/preview": lambda a: {"design_id": a["design"], "amount": 52000},
    "POST /v1/customise/{token}/send": lambda a: {
        "design_id": a["design"],
        "amount": 52000,
        "sender_name": "B",
        "recipient_name": "C",
    },
}
# What A's own key gets for a read of its resources, where not 200: A's card is not in WeChat.
A_READS = {"GET /v1/cards/{card_id}/wechat": 404}


def name(op: Operation) -> str:
    return f"{op.method} {op.path}"


def resource_parameters(op: Operation) -> list[str]:
    return [p for p in PARAMETER.findall(op.path) if p not in SECRETS]


def resource_of(op: Operation, parameter: str) -> str | None:
    if parameter == "session_id":
        return next((kind for prefix, kind in SESSIONS.items() if op.path.startswith(prefix)), None)
    return RESOURCES.get(parameter)


def credentials_of(op: Operation) -> list[str]:
    """How B calls it: each security scheme it admits, or B's own link when its path holds a secret."""
    if op.auth:
        return list(op.auth)
    return ["link"] if set(PARAMETER.findall(op.path)) & SECRETS else []


def probed_operations() -> list[Operation]:
    return [
        op
        for op in OPERATIONS
        if name(op) not in EXEMPT and (resource_parameters(op) or name(op) in NAMED_IN_BODY)
    ]


def test_every_operation_that_names_a_resource_has_a_probe() -> None:
    """A new route with a path parameter fails here until A has such a resource and B a way to call it."""
    missing = []
    for op in OPERATIONS:
        if name(op) in EXEMPT or not resource_parameters(op):
            continue
        for parameter in resource_parameters(op):
            if resource_of(op, parameter) is None:
                missing.append(f"{name(op)}: no resource of A's for {{{parameter}}} (RESOURCES)")
        if not credentials_of(op) or not set(credentials_of(op)) <= set(CREDENTIALS):
            missing.append(f"{name(op)}: no credential of B's for auth {op.auth} (CREDENTIALS)")
    assert missing == [], "\n".join(missing)
    assert set(EXEMPT) <= {name(op) for op in OPERATIONS}, "an exemption names no operation any more"
    assert set(BODIES) | set(NAMED_IN_BODY) <= {name(op) for op in OPERATIONS}, "a body for no operation"


# -- A's resources and B's credentials -------------------------------------------------------------------


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


async def resources_of_a(client: httpx.AsyncClient, a: Merchant, db: asyncpg.Connection) -> dict[str, str]:
    """One of each thing merchant A has, by the names RESOURCES gives them, plus its card's code."""
    design = await create_design(client, a)
    held = await buy(client, a, design["id"], recipient_owner_id=HOLDER)
    await claimed(client, held["link"], HOLDER)
    waiting = await buy(client, a, design["id"], recipient_owner_id=HOLDER)
    card_id = held["card"]["id"]
    code = (await client.get(f"/v1/cards/{card_id}/code", headers=a.headers)).json()["code"]
    till = await till_in_new_store(client, a)
    paid = await client.post("/v1/redemptions", json={"code": code, "amount": 1_000}, headers=till.headers)
    assert paid.status_code == 201, paid.text
    batch = await client.post("/v1/card_batches", json={"count": 2, "amount": 100}, headers=with_key(a))
    assert batch.status_code == 201, batch.text
    image = await client.post(
        "/v1/images",
        params={"purpose": "photo"},
        content=png(),
        headers={**a.headers, "Content-Type": "image/png"},
    )
    assert image.status_code == 201, image.text
    wallet = await open_wallet_session(client, a, HOLDER)
    customise = await open_customise_session(client, a, HOLDER, 52000)
    api_key = (await client.get("/v1/api_keys", headers=a.headers)).json()["data"][0]["id"]
    message = await db.fetchval(
        """INSERT INTO wechat_outbox (merchant_id, card_id, entry_kind, amount, balance, currency, state)
           VALUES ($1, $2, 'sync', 0, 0, 'CNY', 'parked') RETURNING id""",
        a.id,
        card_id,
    )
    discrepancy = await db.fetchval(
        """INSERT INTO wechat_discrepancies (merchant_id, card_id, kind, balance, detail)
           VALUES ($1, $2, 'consumed_in_wechat_with_balance', 1, 'probe') RETURNING id""",
        a.id,
        card_id,
    )
    return {
        "api_key": api_key,
        "batch": batch.json()["id"],
        "card": card_id,
        "code": code,
        "activity": paid.json()["id"],
        "store": till.store,
        "terminal": till.id,
        "design": design["id"],
        "image": image.json()["id"],
        "gift": waiting["id"],
        "wechat_message": f"wxmsg_{message}",
        "wechat_discrepancy": f"wxdis_{discrepancy}",
        "customise_session": customise["id"],
        "wallet_session": wallet["id"],
    }


@dataclass(frozen=True)
class CallerB:
    """Each way a caller of merchant B's comes: its API key, a till, HOLDER's wallet, a customise link."""

    merchant: Merchant
    till: Terminal
    wallet_token: str
    customise_token: str

    def headers(self, credential: str, op: Operation) -> dict[str, str]:
        key = str(uuid.uuid4()) if op.idempotent else None
        if credential == "api_key":
            return bearer(self.merchant.api_key, key)
        if credential == "terminal":
            return bearer(self.till.token, key)
        if credential == "wallet":
            return bearer(self.wallet_token, key)
        return {}

    def link_token(self, path: str) -> str:
        return self.customise_token if "customise" in path else self.wallet_token


async def caller_b(client: httpx.AsyncClient, b: Merchant) -> CallerB:
    # B's WeChat points at a port nothing listens on: an operation that asked WeChat before looking the
    # card up would answer 502, not 404, and show up here.
    account = {
        "appid": "wx0123456789abcdef",
        "secret": "s" * 32,
        "callback_token": CALLBACK_TOKEN,
        "base_url": "http://127.0.0.1:9",
    }
    assert (await client.put("/v1/wechat/account", json=account, headers=b.headers)).status_code == 200
    await create_design(client, b)  # B sells too, so "no such design" is not just "no designs at all"
    await issue_card(client, b, 1_000)
    till = await till_in_new_store(client, b, "manager")
    wallet = await open_wallet_session(client, b, HOLDER)
    customise = await open_customise_session(client, b, HOLDER, 52000)
    return CallerB(b, till, wallet["token"], customise_token(customise["url"]))


async def rows_of(db: asyncpg.Connection, merchant: Merchant) -> dict[str, list[str]]:
    """Every row of every table that has a merchant_id, of this merchant: what B must leave alone."""
    tables = await db.fetch(
        """SELECT table_name FROM information_schema.columns
            WHERE table_schema = 'public' AND column_name = 'merchant_id' ORDER BY table_name"""
    )
    rows: dict[str, list[str]] = {}
    for (table,) in tables:
        # The table name comes from the catalogue, never from input; identifiers cannot be $n parameters.
        found = await db.fetch(
            f'SELECT t::text FROM "{table}" t WHERE merchant_id = $1 ORDER BY t::text',
            merchant.id,
        )
        rows[table] = [r[0] for r in found]
    return rows


def lookalike(value: str) -> str:
    """An id of the same shape as `value` that names nothing."""
    prefix, _, rest = value.rpartition("_")
    if rest.isdigit():
        return f"{prefix}_{int(rest) + 100_000}"
    return value[:-1] + ("a" if value[-1] != "a" else "b")


def code_of(answer: httpx.Response) -> str | None:
    is_problem = answer.headers.get("content-type", "").startswith("application/problem+json")
    return answer.json().get("code") if is_problem else None


async def call_as_b(
    client: httpx.AsyncClient, b: CallerB, op: Operation, credential: str, ids: dict[str, str]
) -> httpx.Response:
    """`op` called by B with `credential`, naming the resources `ids` gives (A's, or ids of nothing)."""
    values = {p: ids[kind] for p in resource_parameters(op) if (kind := resource_of(op, p)) is not None}
    path = PARAMETER.sub(lambda m: values.get(m.group(1)) or b.link_token(op.path), op.path)
    headers = b.headers(credential, op)
    if op.method == "GET":
        return await client.get(path, headers=headers)
    body_of = BODIES.get(name(op)) or NAMED_IN_BODY.get(name(op))
    return await client.post(path, json=body_of(ids) if body_of else {}, headers=headers)


# -- the probe -------------------------------------------------------------------------------------------


async def test_merchant_b_gets_404_for_every_resource_of_merchant_a_and_changes_nothing(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant, db: asyncpg.Connection
) -> None:
    a = await resources_of_a(client, merchant, db)
    b = await caller_b(client, other_merchant)
    before = await rows_of(db, merchant)
    a_balance = await db.fetchval("SELECT balance FROM cards WHERE id = $1", a["card"])
    secrets_of_a = [a["code"], a["code"].replace("-", ""), str(a_balance)]  # 51000: a figure of A's only

    leaks: list[str] = []
    probes: list[str] = []
    # Every list and read without a parameter, as B: none of A's things in it.
    for op in OPERATIONS:
        admitted = [c for c in CREDENTIALS if c in op.auth]
        if op.method != "GET" or PARAMETER.search(op.path) or not admitted:
            continue
        answer = await client.get(op.path, headers=b.headers(admitted[0], op))
        probes.append(f"{name(op)} as B's {admitted[0]}: {answer.status_code}")
        if answer.status_code != 200 or any(a[kind] in answer.text for kind in SHOWN):
            leaks.append(f"{name(op)} as B's {admitted[0]}: {answer.status_code} {answer.text[:200]}")
    # Every operation that names one of A's resources, in its path or its body: B gets the answer an id
    # that does not exist gets (so not even whether A has it), a 404, and nothing of A's in it.
    unknown = {kind: lookalike(value) for kind, value in a.items()} | {"code": unknown_code()}
    for op in probed_operations():
        for credential in credentials_of(op):
            answer = await call_as_b(client, b, op, credential, a)
            nothing = await call_as_b(client, b, op, credential, unknown)
            probes.append(f"{name(op)} as B's {credential}: {answer.status_code}")
            same = (answer.status_code, code_of(answer)) == (nothing.status_code, code_of(nothing))
            refused = answer.status_code == 404 and same
            if not refused or any(s in answer.text for s in secrets_of_a):
                leaks.append(
                    f"{name(op)} as B's {credential}: {answer.status_code} {answer.text[:200]}"
                    f" (an unknown id: {nothing.status_code} {code_of(nothing)})"
                )
    assert leaks == [], "\n".join(leaks)
    assert len(probes) >= 80, probes

    assert await rows_of(db, merchant) == before
    # A's own key reads each of them: the ids were real.
    for op in probed_operations():
        if op.method == "GET" and "api_key" in op.auth:
            values = {p: a[kind] for p in resource_parameters(op) if (kind := resource_of(op, p)) is not None}
            answer = await client.get(op.path.format(**values), headers=merchant.headers)
            assert answer.status_code == A_READS.get(name(op), 200), (name(op), answer.text)
    owned = (await client.get("/v1/wallet/cards", headers=bearer(b.wallet_token))).json()["data"]
    assert a["card"] not in [card["id"] for card in owned]


async def test_a_till_of_merchant_b_cannot_look_up_redeem_or_refund_merchant_as_card(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant, db: asyncpg.Connection
) -> None:
    """The till's own operations, by code and by QR, spelt out: the probe above covers them by code."""
    card = await issue_card(client, merchant, 5_000)
    qr = (await client.get(f"/v1/cards/{card['id']}/qr", headers=merchant.headers)).json()["payload"]
    redemption = await client.post(
        "/v1/redemptions", json={"code": card["code"], "amount": 1_000}, headers=merchant.headers
    )
    assert redemption.status_code == 201, redemption.text
    theirs = await till_in_new_store(client, other_merchant, "manager")
    before = await rows_of(db, merchant)
    for body in ({"code": card["code"]}, {"qr_payload": qr}):
        looked_up = await client.post("/v1/cards/lookup", json=body, headers=theirs.headers)
        assert looked_up.status_code == 404, looked_up.text
        paid = await client.post("/v1/redemptions", json={**body, "amount": 100}, headers=theirs.keyed())
        assert paid.status_code == 404, paid.text
        blocked = await client.post("/v1/terminal/cards/block", json=body, headers=theirs.keyed())
        assert blocked.status_code == 404, blocked.text
    refunded = await client.post(
        "/v1/refunds", json={"redemption": redemption.json()["id"]}, headers=theirs.keyed()
    )
    assert refunded.status_code == 404, refunded.text
    assert await rows_of(db, merchant) == before


async def test_issuing_cards_with_another_merchants_design_is_refused(
    client: httpx.AsyncClient, merchant: Merchant, other_merchant: Merchant
) -> None:
    design = await create_design(client, merchant)
    card = await client.post(
        "/v1/cards", json={"amount": 100, "design_id": design["id"]}, headers=with_key(other_merchant)
    )
    batch = await client.post(
        "/v1/card_batches",
        json={"count": 1, "amount": 100, "design_id": design["id"]},
        headers=with_key(other_merchant),
    )
    assert (card.status_code, batch.status_code) == (404, 404), (card.text, batch.text)

"""Answers that carry a secret (a card code, a QR payload, a key or token, a secret link) are kept by no
cache: `Cache-Control: no-store` on every such answer, first or replayed, declared once per operation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from giftcards.app import build_api
from giftcards.web.openapi import build_document
from giftcards.web.routing import Api, Operation
from tests.support.api import Merchant, admin_headers, with_key
from tests.support.terminals import create_store, enroll

# Fields whose value is a secret, or a link with one in it.
SECRET_FIELDS = {
    "code",
    "secret",
    "token",
    "payload",
    "url",
    "link",
    "card_url",
    "image_url",
    "thumbnail_url",
}
# Answers that are not JSON but carry one: card codes by the batch, a card's QR code.
SECRET_MEDIA = {"application/x-ndjson", "image/svg+xml"}
_JSON = ("application/json", "application/x-ndjson")


# Answers of an open shape (`{"type": "object"}`) whose handlers were read: no code, token or link in them.
REVIEWED_OPEN_ANSWERS = {
    "GET /openapi.json",
    "POST /v1/wechat/designs/{design}/sync",
    "POST /v1/card_batches/{batch_id}/wechat/sync",
    "POST /v1/wechat/discrepancies/{discrepancy_id}/resolve",
}


def resolve(components: dict[str, Any], schema: Any) -> Any:
    if isinstance(schema, dict) and "$ref" in schema:
        return components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def field_names(components: dict[str, Any], schema: Any, seen: frozenset[str] = frozenset()) -> set[str]:
    """Every property name a response schema declares, at any depth."""
    if isinstance(schema, dict) and "$ref" in schema:
        if schema["$ref"] in seen:  # a shape that contains itself
            return set()
        seen |= {schema["$ref"]}
    schema = resolve(components, schema)
    if not isinstance(schema, dict):
        return set()
    names = set(schema.get("properties", {}))
    inner = [
        *schema.get("properties", {}).values(),
        *(schema.get(k, []) for k in ("oneOf", "anyOf", "allOf")),
    ]
    inner += [schema[k] for k in ("items", "additionalProperties") if isinstance(schema.get(k), dict)]
    for part in inner:
        for each in part if isinstance(part, list) else [part]:
            names |= field_names(components, each, seen)
    return names


def answer_schemas(document: dict[str, Any], op: Operation) -> dict[int, Any]:
    """The operation's answers as its OpenAPI document declares them: status -> schema (None: no body)."""
    declared = document["paths"].get(op.path, {}).get(op.method.lower(), {}).get("responses", {})
    return {
        int(status): next(iter(answer["content"].values()))["schema"] if "content" in answer else None
        for status, answer in declared.items()
        if status.startswith(("1", "2"))
    }


def must_not_be_stored(api: Api, document: dict[str, Any], op: Operation) -> bool:
    if op.media_type in SECRET_MEDIA:
        return True
    if op.media_type not in _JSON:
        return False  # pages (no-store already, with their CSP), pictures, scripts, text
    if op.path.startswith(api.secret_path_prefixes()):
        return True  # the answer to a secret link's address
    components = document["components"]["schemas"]
    for status, schema in answer_schemas(document, op).items():
        if status >= 300 or schema is None:
            continue
        whole = resolve(components, schema)
        if "properties" not in whole and f"{op.method} {op.path}" not in REVIEWED_OPEN_ANSWERS:
            return True  # an answer nobody declared the fields of: a new one must be looked at
        if field_names(components, schema) & SECRET_FIELDS:
            return True
    return False


def test_every_operation_whose_answer_can_carry_a_secret_declares_no_store() -> None:
    """Driven by the declarations: a new operation with a code, token or link in its answer (or an
    undeclared answer) fails here until it says no_store=True."""
    api = build_api()
    document = build_document(api, server_url="http://test")
    forgotten = [
        f"{op.method} {op.path}"
        for op in api.operations
        if must_not_be_stored(api, document, op) and not op.no_store
    ]
    assert forgotten == []
    declared = {f"{op.method} {op.path}" for op in api.operations if op.no_store}
    assert {
        "GET /v1/card_pages/{token}/code",
        "GET /v1/card_pages/{token}/qr",
        "GET /v1/customise/{token}",
        "GET /v1/cards/{card_id}/code",
        "GET /v1/cards/{card_id}/qr",
        "GET /v1/cards/{card_id}/qr.svg",
        "POST /v1/api_keys",
        "POST /v1/merchants",
        "POST /v1/cards",
        "GET /v1/card_batches/{batch_id}/cards",
        "POST /v1/terminals",
        "POST /v1/terminal/enroll",
        "POST /v1/wallet_sessions",
        "POST /v1/customise_sessions",
        "POST /v1/cards/{card_id}/access_links",
        "GET /v1/gifts/{gift_id}/link",
    } <= declared


def test_the_openapi_document_says_so() -> None:
    paths = build_document(build_api(), server_url="http://test")["paths"]
    code = paths["/v1/cards/{card_id}/code"]["get"]["responses"]["200"]
    assert code["headers"]["Cache-Control"]["schema"]["const"] == "no-store"
    listing = paths["/v1/cards/{card_id}/activities"]["get"]["responses"]["200"]
    assert "headers" not in listing


def no_store(response: httpx.Response) -> bool:
    assert response.status_code < 300, response.text
    return response.headers.get("cache-control") == "no-store"


async def test_secret_answers_first_and_replayed_are_never_stored(
    client: httpx.AsyncClient, merchant: Merchant, db: asyncpg.Connection
) -> None:
    seen: dict[str, bool] = {}
    seen["create merchant"] = no_store(
        await client.post("/v1/merchants", json={"name": "Another"}, headers=admin_headers())
    )
    key = with_key(merchant)
    seen["create API key"] = no_store(await client.post("/v1/api_keys", json={}, headers=key))
    replay = await client.post("/v1/api_keys", json={}, headers=key)
    assert replay.headers["idempotent-replayed"] == "true"
    seen["create API key, replayed"] = no_store(replay)
    key = with_key(merchant)
    seen["issue a card"] = no_store(await client.post("/v1/cards", json={"amount": 500}, headers=key))
    card = (await client.post("/v1/cards", json={"amount": 500}, headers=key)).json()
    seen["issue a card, replayed"] = no_store(
        await client.post("/v1/cards", json={"amount": 500}, headers=key)
    )
    for name, path in (("code", "code"), ("QR payload", "qr"), ("QR picture", "qr.svg")):
        seen[f"card {name}"] = no_store(
            await client.get(f"/v1/cards/{card['id']}/{path}", headers=merchant.headers)
        )
    batch = (
        await client.post("/v1/card_batches", json={"count": 2, "amount": 100}, headers=with_key(merchant))
    ).json()
    seen["batch codes"] = no_store(
        await client.get(f"/v1/card_batches/{batch['id']}/cards", headers=merchant.headers)
    )

    await db.execute("UPDATE cards SET owner_id = 'o_alice' WHERE id = $1", card["id"])  # as a claimed gift's
    link = await client.post(
        f"/v1/cards/{card['id']}/access_links", json={"owner_id": "o_alice"}, headers=with_key(merchant)
    )
    seen["card page link"] = no_store(link)
    token = urlsplit(link.json()["url"]).path.rsplit("/", 1)[-1]
    for name, path in (("", ""), (" QR", "/qr"), (" code", "/code")):
        seen[f"card page{name}"] = no_store(await client.get(f"/v1/card_pages/{token}{path}"))
    session = await client.post(
        "/v1/customise_sessions",
        json={"owner_id": "o_gifter", "max_amount": 100_000},
        headers=with_key(merchant),
    )
    seen["customise link"] = no_store(session)
    seen["customise session"] = no_store(await client.get("/v1" + urlsplit(session.json()["url"]).path))

    store = await create_store(client, merchant)
    created = await client.post(
        "/v1/terminals",
        json={"store": store["id"], "label": "Till 2", "role": "clerk"},
        headers=with_key(merchant),
    )
    seen["create terminal"] = no_store(created)
    seen["enroll terminal"] = no_store(await enroll(client, created.json()["enrollment"]["code"]))
    seen["wallet session"] = no_store(
        await client.post("/v1/wallet_sessions", json={"owner_id": "o_alice"}, headers=with_key(merchant))
    )
    assert {name for name, stored_nowhere in seen.items() if not stored_nowhere} == set()

    # An answer without a secret keeps the default: the flag is per operation, not everywhere.
    history = await client.get(f"/v1/cards/{card['id']}/activities", headers=merchant.headers)
    assert history.status_code == 200 and "cache-control" not in history.headers

"""The process answers, the database is checked, every error is problem+json, every request has an id."""

from __future__ import annotations

import httpx

from tests.support.servers import eventually


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/not_found"
    assert body["status"] == 404
    assert body["code"] == "not_found"


async def test_wrong_method_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.delete("/healthz")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


async def test_request_id_is_generated_or_kept(client: httpx.AsyncClient) -> None:
    generated = (await client.get("/healthz")).headers["x-request-id"]
    assert len(generated) == 32
    kept = await client.get("/healthz", headers={"X-Request-ID": "till-42.req-7"})
    assert kept.headers["x-request-id"] == "till-42.req-7"
    unsafe = await client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
    assert unsafe.headers["x-request-id"] != "bad id with spaces"


async def test_openapi_document_is_3_1(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert "/v1/redemptions" in document["paths"]


async def test_the_request_id_appears_in_the_json_log_lines(client: httpx.AsyncClient) -> None:
    import io
    import json
    import logging

    from giftcards.core.logs import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("giftcards.access")
    access.addHandler(handler)
    previous = access.level
    access.setLevel(logging.INFO)
    try:
        await client.get("/healthz", headers={"X-Request-ID": "trace-me-123"})
        await eventually(lambda: "trace-me-123" in stream.getvalue())
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    mine = [line for line in lines if line.get("request_id") == "trace-me-123"]
    assert mine and mine[0]["message"] == "GET /healthz 200" and mine[0]["status"] == 200

"""Every route is in the OpenAPI document, and the document is well formed."""

from __future__ import annotations

import httpx
from starlette.routing import Route

from tests.support.servers import LiveServer


async def test_every_route_is_documented(client: httpx.AsyncClient, server: LiveServer) -> None:
    document = (await client.get("/openapi.json")).json()
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops}
    served = {
        (route.path, method)
        for route in server.app.routes
        if isinstance(route, Route)
        for method in (route.methods or set()) - {"HEAD"}
    }
    assert served, "no routes found"
    missing = served - documented
    assert not missing, f"routes missing from /openapi.json: {sorted(missing)}"
    assert not documented - served, "documented routes that are not served"


async def test_operations_have_ids_summaries_and_problem_answers(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    ids = []
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            ids.append(op["operationId"])
            assert op["summary"], (path, method)
            assert any(status.startswith("2") for status in op["responses"]), (path, method)
            if op.get("security"):
                assert "401" in op["responses"]
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    refs = document["components"]["schemas"]
    assert "Problem" in refs and "Card" in refs

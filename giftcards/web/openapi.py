"""The OpenAPI 3.1 document, written from the operation registry (see routing.Api)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from giftcards.core.errors import PROBLEM_TITLES
from giftcards.web.routing import Api, Operation

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string", "enum": sorted(PROBLEM_TITLES)},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

_SECURITY_SCHEMES = {
    "api_key": {"type": "http", "scheme": "bearer", "description": "A merchant's API key (gk_…)"},
    "terminal": {"type": "http", "scheme": "bearer", "description": "A store terminal's token (gt_…)"},
    "admin": {"type": "http", "scheme": "bearer", "description": "The platform admin token"},
    "wallet": {"type": "http", "scheme": "bearer", "description": "A wallet session's token (gw_…)"},
}


def list_of(item: dict[str, Any], **more: Any) -> dict[str, Any]:
    """The schema of a list answer (`{"object": "list", "data": [...], "has_more": …}`) of `item`s."""
    properties = {
        "object": {"const": "list"},
        "data": {"type": "array", "items": item},
        "has_more": {"type": "boolean"},
        **more,
    }
    return {"type": "object", "properties": properties}


_NO_STORE = {
    "description": "The answer carries a secret: no cache may keep it",
    "schema": {"type": "string", "const": "no-store"},
}


_REF = "#/components/schemas/{name}"


def build_document(api: Api, *, server_url: str) -> dict[str, Any]:
    operations = [op for op in api.operations if op.include_in_schema]
    shapes = _shapes(operations)
    refs, components = msgspec.json.schema_components(shapes, ref_template=_REF)
    schemas = dict(zip(shapes, refs, strict=True))
    # A query's fields are the operation's parameters, not a component of their own.
    queries = {query: components.pop(_name(schemas[query])) for query in _shapes(operations, "query")}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas, queries)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "giftcards",
            "version": "1",
            "description": "Digital gift cards and a card wallet. Amounts are integers in minor units "
            "(fen for CNY). Errors are RFC 9457 problem documents with a stable `code`.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA, **api.schemas, **components},
            "securitySchemes": _SECURITY_SCHEMES,
        },
    }


def _is_shape(declared: Any) -> bool:
    """A msgspec type (a Struct, a Page of one) rather than a schema written out (or None)."""
    return declared is not None and not isinstance(declared, dict)


def _shapes(operations: list[Operation], only: str | None = None) -> list[Any]:
    """The msgspec types the operations declare (or only their `only`: "query"), each once."""
    declared = [
        shape
        for op in operations
        for part, shape in (("body", op.body), ("query", op.query), *(("", s) for s in op.responses.values()))
        if only in (None, part)
    ]
    return list(dict.fromkeys(shape for shape in declared if _is_shape(shape)))


def _name(ref: dict[str, Any]) -> str:
    return str(ref["$ref"]).rsplit("/", 1)[-1]


def _operation(op: Operation, schemas: dict[Any, Any], queries: dict[Any, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary, "tags": [op.tag]}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "maxLength": 200}}
        for name in re.findall(r"{(\w+)(?::\w+)?}", op.path)
    ]
    if op.query:
        query = queries[op.query]
        required = set(query.get("required", []))
        parameters += [
            {"name": name, "in": "query", "required": name in required, "schema": schema}
            for name, schema in query.get("properties", {}).items()
        ]
    if op.idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retries with the same key and body return the first outcome.",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
            }
        )
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        # An operation whose fields are all optional may be called with no body at all.
        needed = any(field.required for field in msgspec.structs.fields(op.body))
        content = {"application/json": {"schema": schemas[op.body]}}
        doc["requestBody"] = {"required": needed, "content": content}
    elif op.uploads:
        binary = {"schema": {"type": "string", "format": "binary"}}
        content = {media: binary for media in op.uploads}
        doc["requestBody"] = {"required": True, "description": "The file's bytes", "content": content}
    if op.auth:
        doc["security"] = [{scheme: []} for scheme in op.auth]
    doc["responses"] = {
        str(status): _response(op, status, schemas[shape] if _is_shape(shape) else shape)
        for status, shape in op.responses.items()
    }
    for status in _error_statuses(op):
        doc["responses"].setdefault(
            str(status),
            {
                "description": "A problem",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            },
        )
    return doc


def _response(op: Operation, status: int, schema: Any) -> dict[str, Any]:
    if schema is None:
        return {"description": "No body"}
    doc: dict[str, Any] = {"description": "Success", "content": {op.media_type: {"schema": schema}}}
    if op.no_store and status < 400:
        doc["headers"] = {"Cache-Control": _NO_STORE}
    return doc


def _error_statuses(op: Operation) -> list[int]:
    statuses = [400, 404, 409, 413, 415, 422, 429, 500, 503]
    if op.auth:
        statuses += [401, 403]
    if op.idempotent or op.method == "POST":
        statuses.append(402)
    return sorted(statuses)

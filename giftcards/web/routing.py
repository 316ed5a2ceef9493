"""API operations declared as data: method, path, who may call it, the schemas of what goes in and out.

The same declaration builds the Starlette routes, validates requests and writes the OpenAPI document, so
a route cannot exist without being documented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from giftcards.core.errors import DomainError, ValidationError
from giftcards.core.shapes import decode_query

Endpoint = Callable[[Request], Awaitable[Response]]

_JSON_TYPES = ("application/json",)
_MAX_JSON_DEPTH = 32
# A body that is valid UTF-8 holds a surrogate only through a \uD800-\uDFFF escape; json.loads pairs
# the escapes of a high and a low surrogate into one character, so any surrogate left is a lone one: no
# character at all, which PostgreSQL (and UTF-8) cannot hold.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL = re.compile("\x00")  # PostgreSQL text cannot store it: refused here rather than failing there


# A path parameter of one of these names is a secret (a card page's, customise, gift or wallet link): the
# access log writes such a path only up to it (Api.secret_path_prefixes).
SECRET_PARAMETERS = ("{token}", "{secret}")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Endpoint
    operation_id: str
    summary: str
    tag: str
    auth: tuple[str, ...] = ()  # security schemes, any one of which admits the caller; () = public
    body: type | None = None  # the JSON body's shape, a msgspec Struct (core/shapes.py)
    query: type | None = None  # the query's shape, a Struct
    # status -> the answer's shape (a Struct type, a schema written out, or None for no body)
    responses: dict[int, Any] = field(default_factory=dict)
    uploads: tuple[str, ...] = ()  # the media types of a raw body (an image) that the handler decodes
    idempotent: bool = False  # accepts Idempotency-Key
    media_type: str = "application/json"  # of the success response
    include_in_schema: bool = True
    # False: the handler gets no connection, and reads the body itself if it wants one (health, documents,
    # and anonymous work that takes a connection only briefly, around what needs one: see calls.acquire).
    uses_db: bool = True
    max_body: int | None = None  # the most bytes the body may hold (None: GIFTCARDS_MAX_BODY_BYTES)
    too_large: str = "payload_too_large"  # the problem code for a larger body
    # True: the handler waits on another service (WeChat), so it holds no connection while it does: it gets
    # none in `call.conn` and takes one for each short step with `call.connect()` (see calls._serve_apart).
    outbound: bool = False
    # The answer carries a secret (a card code, a QR payload, a key or token, a secret link): no cache, the
    # browser's own included, may keep it. Applied to every answer of the operation (calls.endpoint).
    no_store: bool = False
    # True: the handler's own database statement authenticates the caller (a till's redemption, whose one
    # statement does all its work: value/redemption.py); it gets no connection and the body as bytes.
    admits_itself: bool = False


class Api:
    """The registry of operations; `routes()` hands them to Starlette."""

    def __init__(self) -> None:
        self.operations: list[Operation] = []
        self.schemas: dict[str, dict[str, Any]] = {}

    def operation(self, method: str, path: str, **spec: Any) -> Callable[[Endpoint], Endpoint]:
        def register(endpoint: Endpoint) -> Endpoint:
            self.operations.append(
                Operation(
                    method, path, endpoint, operation_id=spec.pop("operation_id", endpoint.__name__), **spec
                )
            )
            return endpoint

        return register

    def schema(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Register a named component schema and return a $ref to it."""
        self.schemas[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}

    def secret_path_prefixes(self) -> tuple[str, ...]:
        """Each path's part before a secret parameter, e.g. "/c/" of /c/{token}/card.png."""
        prefixes = {
            op.path[: op.path.index(name)]
            for op in self.operations
            for name in SECRET_PARAMETERS
            if name in op.path
        }
        return tuple(sorted(prefixes))

    def routes(self) -> list[Route]:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for op in self.operations:
            by_path.setdefault(op.path, {})[op.method] = op.endpoint
        # Literal paths first, so /v1/cards/lookup is never taken for /v1/cards/{card_id}.
        ordered = sorted(by_path.items(), key=lambda item: item[0].count("{"))
        return [_method_route(path, endpoints) for path, endpoints in ordered]


def _method_route(path: str, endpoints: dict[str, Endpoint]) -> Route:
    if len(endpoints) == 1:
        ((method, endpoint),) = endpoints.items()
        return Route(path, endpoint, methods=[method])

    async def dispatch(request: Request) -> Response:
        return await endpoints[request.method](request)

    return Route(path, dispatch, methods=list(endpoints))


def read_object(raw: bytes, content_type_header: str) -> dict[str, Any]:
    """`raw` as a JSON object fit for PostgreSQL text, or the DomainError that says why it is not. (It is
    what an Idempotency-Key's request fingerprint is taken of.)"""
    content_type = content_type_header.split(";")[0].strip().lower()
    if not raw and not content_type:  # no body at all: as good as {} where nothing is required
        return {}
    if content_type not in _JSON_TYPES:
        raise DomainError("unsupported_media_type", "send the body as application/json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DomainError("malformed_json", "the body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise DomainError("malformed_json", "the body is not valid JSON") from None
    if _depth(value) > _MAX_JSON_DEPTH:
        raise DomainError("malformed_json", f"the body is nested deeper than {_MAX_JSON_DEPTH} levels")
    if _SURROGATE_ESCAPE.search(text) and (where := _holding(value, _SURROGATE)) is not None:
        raise ValidationError([{"field": where, "message": "must not contain a lone UTF-16 surrogate"}])
    if not isinstance(value, dict):
        raise DomainError("invalid_request", "the body must be a JSON object")
    if "\\u0000" in text and (where := _holding(value, _NUL)) is not None:
        raise ValidationError([{"field": where, "message": "must not contain the NUL character"}])
    return value


def query_params(request: Request, shape: type) -> Any:
    params = dict(request.query_params)
    if len(params) != len(request.query_params.multi_items()):
        raise DomainError("invalid_request", "a query parameter was given more than once")
    return decode_query(params, shape)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(body),  # UTF-8, unescaped, compact: as idempotency.encode stores answers
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > _MAX_JSON_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _holding(value: Any, character: re.Pattern[str]) -> str | None:
    """The field (named as validation names fields) whose key or text holds `character`, if any."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str) and character.search(item):
            return path or "body"
        if isinstance(item, dict):
            for name, child in item.items():
                field = _printable(name) if not path else f"{path}.{_printable(name)}"
                if character.search(name):
                    return field
                stack.append((child, field))
        elif isinstance(item, list):
            stack.extend((child, f"{path or 'body'}[{index}]") for index, child in enumerate(item))
    return None


def _printable(name: str) -> str:
    """A field name fit for the answer: a lone surrogate cannot be encoded, so it is written as its escape."""
    return name.encode("utf-8", "backslashreplace").decode("utf-8")

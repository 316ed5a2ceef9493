"""The adapter every API endpoint goes through: parse → authenticate → (idempotently) call → render.

Handlers receive a `Call` and return `(status, payload)` or a ready Response; they hold no SQL and no
HTTP plumbing of their own.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Any, cast

import asyncpg
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from giftcards.core import idempotency
from giftcards.core.errors import DomainError
from giftcards.core.sealing import Keyring
from giftcards.core.shapes import decode
from giftcards.db.pool import acquire_within, give_back, is_unavailable
from giftcards.runtime import Runtime
from giftcards.stores.merchants import API_KEY_PREFIX, Principal, authenticate_admin, authenticate_api_key
from giftcards.web.body import gate as body_gate
from giftcards.web.problems import PROBLEM_JSON
from giftcards.web.routing import Api, Operation, json_response, query_params, read_object

Result = tuple[int, Any] | Response
Handler = Callable[["Call"], Awaitable[Result]]
AfterCall = Callable[[asyncpg.Connection], Awaitable[None]]

log = logging.getLogger("giftcards.calls")

Authenticator = Callable[[asyncpg.Connection, Runtime, str], Awaitable[Principal]]
AUTHENTICATORS: dict[str, tuple[str, Authenticator]] = {}  # scheme -> (token prefix, authenticator)


def register_authenticator(scheme: str, prefix: str, authenticator: Authenticator) -> None:
    AUTHENTICATORS[scheme] = (prefix, authenticator)


async def _api_key(conn: asyncpg.Connection, rt: Runtime, token: str) -> Principal:
    return await authenticate_api_key(conn, rt.keyring, token)


register_authenticator("api_key", API_KEY_PREFIX + "_", _api_key)


@dataclass(frozen=True)
class Call:
    request: Request
    rt: Runtime
    conn: asyncpg.Connection
    principal: Principal
    body: Any  # the operation's body shape, decoded
    query: Any  # the operation's query shape, decoded
    idempotency_key: str | None
    # Work for the call's connection once the call's own transaction has ended, whatever its outcome:
    # records that must survive a rollback (e.g. the audit of a refused attempt). Shared by `replace`.
    after: list[AfterCall] = field(default_factory=list)

    @property
    def path(self) -> dict[str, str]:
        return self.request.path_params

    @property
    def filters(self) -> dict[str, Any]:
        """The query's fields as keyword arguments: a listing's filters are named as its query's."""
        return msgspec.structs.asdict(self.query)

    @property
    def keyring(self) -> Keyring:
        return self.rt.keyring

    @property
    def public_url(self) -> str:
        """Where this service is reached: the base of every link an answer holds."""
        return self.rt.settings.public_url

    @property
    def merchant_id(self) -> str:
        return self.principal.merchant_id

    def connect(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A pooled connection for one short step of an `outbound` operation, which holds none while it
        waits on WeChat (its `conn` refuses every use)."""
        return acquire(self.rt)


ANONYMOUS = Principal("anonymous", "anonymous", "")
MAX_CLIENT_ADDRESS = 100  # as the staff log keeps it: a trusted proxy's X-Forwarded-For may be any text


def client_address(request: Request) -> str | None:
    """The caller's address: the peer's, or what a trusted proxy forwarded (GIFTCARDS_TRUSTED_PROXIES).
    Failures are counted and attempts logged under this string."""
    return request.client.host[:MAX_CLIENT_ADDRESS] if request.client else None


class _NoConnection:
    """`Call.conn` of an outbound operation: it holds no connection, so any use is a bug, caught at once."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("an outbound operation holds no connection: use `async with call.connect()`")


NO_CONNECTION = cast(asyncpg.Connection, _NoConnection())


def endpoint(api: Api, method: str, path: str, **spec: Any) -> Callable[[Handler], Handler]:
    """Declare an API operation (see `Operation`) whose handler takes a Call; its summary, unless given, is
    the handler's docstring (its first paragraph, on one line)."""

    # Every authenticated POST takes an Idempotency-Key; anonymous callers share no key scope.
    spec.setdefault("idempotent", method == "POST" and bool(spec.get("auth")))

    def register(handler: Handler) -> Handler:
        if "summary" not in spec:
            spec["summary"] = " ".join(inspect.cleandoc(handler.__doc__ or "").split("\n\n")[0].split())

        async def asgi_endpoint(request: Request) -> Response:
            try:
                response = await _serve(request, op, handler)
            except Exception as exc:
                if not is_unavailable(exc):
                    raise
                # A lost database is an answer (503), not a crash of the request.
                log.warning("database unavailable: %s", type(exc).__name__)
                raise DomainError("database_unavailable", headers={"Retry-After": "1"}) from None
            if op.no_store:  # first answers and replays alike
                response.headers["Cache-Control"] = "no-store"
            return response

        asgi_endpoint.__name__ = handler.__name__
        api.operation(method, path, **spec)(asgi_endpoint)
        op = api.operations[-1]
        return handler

    return register


# Who may call: the security schemes of `Operation.auth`, any one of which admits the caller.
PUBLIC: tuple[str, ...] = ()
MERCHANT = ("api_key",)
TERMINAL = ("terminal",)
STAFF = ("api_key", "terminal")  # a merchant's key or one of its tills
ADMIN = ("admin",)
TEXT = {"type": "string"}  # the schema of a text answer (media_type says which)
BINARY = {"type": "string", "format": "binary"}  # of an image's bytes
_UNSET: Any = object()


class Operations:
    """Declares one module's operations (`endpoint`), saying once the tag and callers most of them share,
    so each declaration is a line, `route.get(path, answer=Card)`, over a handler whose docstring is the
    operation's summary."""

    def __init__(self, api: Api, tag: str, auth: tuple[str, ...] = PUBLIC) -> None:
        self.api = api
        self.tag = tag
        self.auth = auth

    def get(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.declare("GET", path, **spec)

    def post(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.declare("POST", path, **spec)

    def put(self, path: str, **spec: Any) -> Callable[[Handler], Handler]:
        return self.declare("PUT", path, **spec)

    def declare(
        self, method: str, path: str, answer: Any = _UNSET, created: Any = _UNSET, **spec: Any
    ) -> Callable[[Handler], Handler]:
        """`answer` is the 200 answer's shape, `created` the 201's; `responses` holds any other."""
        responses = dict(spec.pop("responses", {}))
        if answer is not _UNSET:
            responses[200] = answer
        if created is not _UNSET:
            responses[201] = created
        spec.setdefault("tag", self.tag)
        spec.setdefault("auth", self.auth)
        return endpoint(self.api, method, path, responses=responses, **spec)


async def _serve(request: Request, op: Operation, handler: Handler) -> Response:
    rt: Runtime = request.app.state.runtime
    body_gate(request).limit_to(op.max_body or rt.settings.max_body_bytes, op.too_large)
    if any("\x00" in value for value in request.path_params.values()):
        raise DomainError("not_found")  # PostgreSQL text cannot hold NUL: no resource is named so
    query = query_params(request, op.query) if op.query else {}
    key = request.headers.get("idempotency-key")
    if key is not None:
        if not op.idempotent:
            raise DomainError("invalid_request", "this operation does not take an Idempotency-Key")
        idempotency.check_key(key)
    if not op.uses_db:
        return _render(await handler(Call(request, rt, None, ANONYMOUS, {}, query, None)))
    # The whole body, bounded in bytes and time, before a connection is taken: a client that sends it
    # slowly holds no connection meanwhile. Uploads are read here too; their handlers decode the bytes.
    raw = await request.body()
    if op.admits_itself:
        return _render(await handler(Call(request, rt, NO_CONNECTION, ANONYMOUS, {}, query, key)))
    if op.outbound:
        return await _serve_apart(request, op, handler, query, key, raw)
    async with acquire(rt) as conn:
        principal, document, body = await _admit(request, op, rt, conn, raw)
        call = Call(request, rt, conn, principal, body, query, key)
        try:
            if key is None or principal is ANONYMOUS:
                return _render(await handler(call))

            async def work(tx: asyncpg.Connection) -> tuple[int, Any]:
                return _answer(await handler(replace(call, conn=tx)))

            outcome = await idempotency.run_once(
                conn, rt.keyring.box, **_key_scope(request, principal, key, document), work=work
            )
        finally:
            await _run_after(call, conn)
    return outcome_response(outcome)


def _key_scope(request: Request, principal: Principal, key: str, document: dict[str, Any]) -> dict[str, Any]:
    """Whose Idempotency-Key it is, and the request it goes with (its body as the client sent it)."""
    return {
        "merchant_id": principal.merchant_id,
        "principal_id": principal.id,
        "key": key,
        "fingerprint": idempotency.request_fingerprint(request.method, request.scope["path"], document),
    }


def _answer(result: Result) -> tuple[int, Any]:
    assert isinstance(result, tuple), "idempotent operations return (status, payload)"
    return result


async def _admit(
    request: Request, op: Operation, rt: Runtime, conn: asyncpg.Connection, raw: bytes
) -> tuple[Principal, dict[str, Any], Any]:
    """Who calls, the JSON body as sent, and decoded as the operation's shape (an upload's handler decodes
    the raw bytes itself)."""
    principal = await _authenticate(request, rt, conn, op.auth)
    if op.body is None:
        return principal, {}, {}
    document = read_object(raw, request.headers.get("content-type", ""))
    return principal, document, decode(document, op.body)


async def _serve_apart(
    request: Request, op: Operation, handler: Handler, query: dict[str, Any], key: str | None, raw: bytes
) -> Response:
    """An outbound operation: the caller is admitted on a connection given back at once, the handler
    takes its own for each short step, and an Idempotency-Key's answer is stored afterwards in a short
    transaction of its own (idempotency.run_apart). No connection is held while WeChat answers."""
    rt: Runtime = request.app.state.runtime
    async with acquire(rt) as conn:
        principal, document, body = await _admit(request, op, rt, conn, raw)
    call = Call(request, rt, NO_CONNECTION, principal, body, query, key)
    try:
        if key is None or principal is ANONYMOUS:
            return _render(await handler(call))

        async def work() -> tuple[int, Any]:
            return _answer(await handler(call))

        outcome = await idempotency.run_apart(
            call.connect, rt.keyring.box, **_key_scope(request, principal, key, document), work=work
        )
    finally:
        if call.after:
            async with acquire(rt) as conn:
                await _run_after(call, conn)
    return outcome_response(outcome)


def outcome_response(outcome: idempotency.Outcome) -> Response:
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    media = PROBLEM_JSON if outcome.status >= 400 else "application/json"
    return Response(outcome.body, status_code=outcome.status, media_type=media, headers=headers)


@contextlib.asynccontextmanager
async def acquire(rt: Runtime) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection within a short timeout, so a lost database answers 503 in about a second."""
    try:
        conn = await acquire_within(rt.pool, rt.settings.db_timeout)
    except TimeoutError:
        raise DomainError("database_unavailable", headers={"Retry-After": "1"}) from None
    try:
        yield conn
    except BaseException as exc:
        await give_back(rt.pool, conn, exc)
        raise
    await give_back(rt.pool, conn, None)


def credential(request: Request, schemes: tuple[str, ...]) -> tuple[str, str]:
    """The scheme and the token of the request's credential, one of `schemes` (401 otherwise)."""
    header = request.headers.get("authorization", "")
    scheme_word, _, token = header.partition(" ")
    token = token.strip()
    if scheme_word.lower() != "bearer" or not token:
        raise DomainError(
            "unauthenticated", "send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"}
        )
    for scheme in schemes:
        if scheme in AUTHENTICATORS and token.startswith(AUTHENTICATORS[scheme][0]):
            return scheme, token
    if "admin" in schemes:
        return "admin", token
    raise DomainError("unauthenticated", "this operation does not accept that kind of credential")


async def _authenticate(
    request: Request, rt: Runtime, conn: asyncpg.Connection, schemes: tuple[str, ...]
) -> Principal:
    if not schemes:
        return ANONYMOUS
    scheme, token = credential(request, schemes)
    if scheme == "admin":
        return authenticate_admin(rt.settings.admin_token, token)
    return await AUTHENTICATORS[scheme][1](conn, rt, token)


async def _run_after(call: Call, conn: asyncpg.Connection) -> None:
    for after in call.after:
        try:
            await after(conn)
        except Exception:  # never mask the call's own outcome
            log.exception("after-call work failed")


def _render(result: Result) -> Response:
    if isinstance(result, Response):
        return result
    status, payload = result
    return json_response(payload, status)

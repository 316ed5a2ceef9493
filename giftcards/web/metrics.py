"""The metrics over HTTP: each request timed under its operation's id, and /metrics for Prometheus.

/metrics answers only `Authorization: Bearer <GIFTCARDS_METRICS_TOKEN>` (401 otherwise), and is not there
at all (404) while that setting is unset. It is in the OpenAPI document as an operation of its own, without
a security scheme: its token is no API credential.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Sequence

from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from giftcards.core.errors import DomainError
from giftcards.db.pool import connector
from giftcards.observability import metrics
from giftcards.web.calls import TEXT, Call, Operations, Result
from giftcards.web.middleware import CLIENT_GONE
from giftcards.web.routing import Api, Operation

UNMATCHED = "unmatched"  # the operation label of a request no operation took (404, 405)


class RequestMetrics:
    """Outermost middleware: times each request until its app returns, and observes it under its operation
    (the route Starlette matched, never the path itself, which may carry an id or a secret) and status."""

    def __init__(self, app: ASGIApp, *, operations: Sequence[Operation]) -> None:
        self.app = app
        self.operation_ids = {(op.method, op.path): op.operation_id for op in operations}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = CLIENT_GONE  # until an answer starts

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            metrics.REQUEST_SECONDS.labels(self._operation(scope), str(status)).observe(
                time.perf_counter() - started
            )

    def _operation(self, scope: Scope) -> str:
        route = scope.get("route")  # set by Starlette's router on the scope it was given
        if isinstance(route, Mount):
            return route.name or UNMATCHED
        method = "GET" if scope["method"] == "HEAD" else scope["method"]
        path = getattr(route, "path", "")
        return self.operation_ids.get((method, path), UNMATCHED)


def register(api: Api) -> None:
    route = Operations(api, tag="system")

    @route.get(
        "/metrics", answer=TEXT, operation_id="metrics", uses_db=False, media_type=metrics.CONTENT_TYPE
    )
    async def metrics_exposition(call: Call) -> Result:
        """Prometheus metrics: `Authorization: Bearer <GIFTCARDS_METRICS_TOKEN>` (404 while unset)"""
        expected = call.rt.settings.metrics_token
        if expected is None:
            raise DomainError("not_found")
        scheme, _, token = call.request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
            raise DomainError(
                "unauthenticated",
                "send 'Authorization: Bearer <GIFTCARDS_METRICS_TOKEN>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        body = await metrics.exposition(connector(call.rt.pool, metrics.OUTBOX_TIMEOUT))
        return Response(body, media_type=metrics.CONTENT_TYPE)

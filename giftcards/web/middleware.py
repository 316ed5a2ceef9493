"""Plain ASGI middleware: a request id on every request and log line, an access log, the body gate."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from giftcards.core import logs
from giftcards.web.body import BodyGate
from giftcards.web.problems import unexpected_error_response

access_log = logging.getLogger("giftcards.access")

CLIENT_GONE = 499  # the access log's status for a request whose client disconnected first (as nginx)
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def loggable_path(path: str, secret_prefixes: tuple[str, ...]) -> str:
    """A path whose remainder is a secret (a secret link's address, Api.secret_path_prefixes) is logged
    as its prefix + "…"."""
    for prefix in secret_prefixes:
        if path.startswith(prefix):
            return prefix + "…"
    return path


class RequestContextMiddleware:
    """The request id, the body gate (web/body.py), the access line, and the one place an unexpected
    failure becomes a 500 and a single log line with its request id (Starlette's error middleware and
    uvicorn would each log it again if the exception went on to them)."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, body_timeout: float, secret_prefixes: tuple[str, ...]
    ) -> None:
        self.app = app
        self.secret_prefixes = secret_prefixes
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        offered = headers.get("x-request-id", "")
        rid = offered if _CLIENT_REQUEST_ID.match(offered) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500
        answered = False
        body = BodyGate(receive, headers, limit=self.max_body_bytes, timeout=self.body_timeout)
        body.install(scope)

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                await body.drain()  # answered before the body's end: so that the client reads the answer
                out = MutableHeaders(scope=message)
                out["X-Request-ID"] = rid
                if not body.complete:  # too much left, or too slow: the rest is not read
                    out["Connection"] = "close"
            await send(message)

        try:
            await self.app(scope, body.receive, send_with_id)
        except ClientDisconnect:
            status = CLIENT_GONE  # the client left before sending its whole body: nobody to answer
        except Exception as exc:
            response = unexpected_error_response(exc)  # logs it, once
            if not answered:
                await response(scope, body.receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %d",
                scope["method"],
                loggable_path(scope["path"], self.secret_prefixes),
                status,
                extra={"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
            )
            logs.request_id.reset(token)

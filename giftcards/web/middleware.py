"""Plain ASGI middleware: a request id on every request and log line, an access log, a body-size gate."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from giftcards import logs
from giftcards.web.problems import problem_response

access_log = logging.getLogger("giftcards.access")

_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Paths whose remainder is a secret (gift links, card pages, customise and wallet links): logged as
# prefix + "…".
SECRET_PATH_PREFIXES = (
    "/g/",
    "/c/",
    "/customise/",
    "/w/",
    "/v1/gift_links/",
    "/v1/card_pages/",
    "/v1/customise/",
)


def loggable_path(path: str) -> str:
    for prefix in SECRET_PATH_PREFIXES:
        if path.startswith(prefix):
            return prefix + "…"
    return path


def _is_upload(path: str) -> bool:
    """Image uploads may exceed the JSON limit; their handlers enforce their own while reading."""
    return path == "/v1/images" or (path.startswith("/v1/customise/") and path.endswith("/photos"))


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

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

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = rid
            await send(message)

        try:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self.max_body_bytes and not _is_upload(scope["path"]):
                response = problem_response(
                    "payload_too_large", f"the body may be at most {self.max_body_bytes} bytes"
                )
                await response(scope, receive, send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %d",
                scope["method"],
                loggable_path(scope["path"]),
                status,
                extra={"status": status, "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
            )
            logs.request_id.reset(token)

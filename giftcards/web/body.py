"""Every request body is read through one gate: at most so many bytes, the whole of it within a deadline.

A client that sends its body slowly must hold nothing scarce while it does: the adapter reads the body
before it takes a database connection (web/calls.py), and this gate bounds that read by the bytes that
actually arrive (a declared Content-Length is believed only when it is already too large) and by the time
since the request's headers arrived. The operation being served sets its own byte limit before reading
(uploads take more, WeChat's callbacks less).

A request answered before its body was read to the end (refused, or answered without it) has a client
still sending. What arrives of it in the next DRAIN_SECONDS, up to DRAIN_BYTES, is read and dropped first,
so that the client reads the answer: one that is still sending when the connection closes may see only a
reset. Past that, the answer closes the connection and the rest is never read.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Message, Receive, Scope

from giftcards.core.errors import DomainError

DRAIN_BYTES = 8 * 1_048_576
DRAIN_SECONDS = 1.0
_SCOPE_KEY = "giftcards.body_gate"
_LENGTH = re.compile(r"[0-9]{1,18}")


class BodyGate:
    """Wraps the ASGI `receive` of one request (see RequestContextMiddleware)."""

    def __init__(self, receive: Receive, headers: Headers, *, limit: int, timeout: float) -> None:
        self._receive = receive
        declared = headers.get("content-length", "")
        self._declared = int(declared) if _LENGTH.fullmatch(declared) else None
        # HTTP/1.1: a request has a body only with a Transfer-Encoding or a Content-Length above 0.
        self.complete = "transfer-encoding" not in headers and not self._declared
        # Asked for "100 Continue" and not read yet: it has not sent its body, so nothing is to be drained.
        self._waiting_to_send = headers.get("expect", "").lower() == "100-continue"
        self.received = 0
        self.limit = limit
        self.too_large = "payload_too_large"
        self.timeout = timeout
        self._deadline = asyncio.get_running_loop().time() + timeout

    def limit_to(self, limit: int, too_large: str) -> None:
        """The operation's own limit, and the problem code that refuses a body above it."""
        self.limit, self.too_large = limit, too_large

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()  # waiting for a disconnect is not reading a body
        if self._declared is not None and self._declared > self.limit:
            raise self._refuse()  # before a byte is read (and before any "100 Continue")
        self._waiting_to_send = False
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise DomainError(
                "request_timeout", f"the whole body must arrive within {self.timeout:g} s"
            ) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise self._refuse()
            self.complete = not message.get("more_body", False)
        return message

    async def drain(self) -> None:
        """Read and drop what is left of the body, if it is at most DRAIN_BYTES and arrives in time."""
        if self.complete or self._waiting_to_send:
            return
        if self._declared is not None and self._declared - self.received > DRAIN_BYTES:
            return
        budget = self.received + DRAIN_BYTES
        with contextlib.suppress(TimeoutError):
            loop = asyncio.get_running_loop()
            async with asyncio.timeout_at(min(self._deadline, loop.time() + DRAIN_SECONDS)):
                while not self.complete and self.received <= budget:
                    message = await self._receive()
                    if message["type"] != "http.request":
                        return  # the client has gone
                    self.received += len(message.get("body", b""))
                    self.complete = not message.get("more_body", False)

    def install(self, scope: Scope) -> None:
        scope[_SCOPE_KEY] = self

    def _refuse(self) -> DomainError:
        return DomainError(self.too_large, f"the body may be at most {self.limit} bytes", limit=self.limit)


def gate(request: Request) -> BodyGate:
    found = request.scope[_SCOPE_KEY]
    assert isinstance(found, BodyGate), "RequestContextMiddleware installs the gate"
    return found

"""The HTTP under wechatpy: every request to WeChat, made with httpx on the event loop.

* A deadline for a whole piece of WeChat work (waiting for a turn, connecting, sending, the whole answer,
  and a token refresh on the way): a per-read timeout never trips on an answer that trickles in a byte
  every few seconds, so the deadline is enforced by cancelling the request (`asyncio.timeout_at`), which
  needs nothing from the socket.
* No redirects: WeChat's API never answers 3xx, and following one sent the server (and the access_token
  in its query) to whatever host the answer named. A 3xx is an upstream error like a 5xx.
* Answers are bounded in size.
* Turns: at most `per_merchant` pieces of one merchant's WeChat work in flight at once in this process.
  More wait for a turn until their deadline, holding nothing meanwhile (no connection, no thread), so a
  merchant whose WeChat is slow cannot take what other merchants need.

wechatpy itself stays synchronous, in a worker thread: its `_http` is a `Transport` that hands each request
to `Upstream.send` on the event loop and waits for the answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
import httpx

T = TypeVar("T")

MAX_ANSWER_BYTES = 1_048_576  # WeChat's JSON answers are a few KB
THREADS = 64  # worker threads running wechatpy, apart from the ones anyio lends the rest of the service
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45011})  # system busy, API quota, API minute limit

# The merchants whose turn the current task holds: work that holds a turn and calls WeChat again (a token
# refresh inside a call, a call inside a sync) goes on in it instead of waiting for a second one.
_held_turns: ContextVar[frozenset[str]] = ContextVar("wechat_turns", default=frozenset())

# httpx writes every request's URL to its log at INFO, and WeChat's URLs carry the access_token (and, for
# the token call, the AppSecret).
logging.getLogger("httpx").setLevel(logging.WARNING)


class WeChatFailure(Exception):
    """A call to WeChat that did not succeed. `kind`: transport | http | errcode (| internal, for our own
    failure around a call). Safe to log and show: never holds a URL, which would carry the access_token."""

    def __init__(self, kind: str, detail: str, *, errcode: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.errcode = errcode
        self.detail = detail[:300]

    @property
    def token_problem(self) -> bool:
        return self.errcode in TOKEN_ERRCODES

    @property
    def transient(self) -> bool:
        """Worth retrying later as it is: WeChat was unreachable, overloaded or rate limiting."""
        return self.kind in ("transport", "http") or self.errcode in TRANSIENT_ERRCODES or self.token_problem


@dataclass(frozen=True)
class Answer:
    """What wechatpy reads of a response. Statuses other than 2xx never get this far."""

    status_code: int
    content: bytes
    request: None = None  # wechatpy hands it to its exceptions

    def raise_for_status(self) -> None:
        """Nothing left to raise: `Upstream.send` turned every other status into a WeChatFailure."""

    def json(self) -> Any:
        return json.loads(self.content)


class Upstream:
    """The process's way out to WeChat: one httpx connection pool, the worker threads, the turns."""

    def __init__(self, *, per_merchant: int = 2) -> None:
        self.per_merchant = per_merchant
        self._turns: dict[str, asyncio.Semaphore] = {}
        # Made here, at start: its TLS context costs tens of milliseconds of CPU, which a first WeChat call
        # in the middle of the tills' traffic would take from them. httpx's timeouts apply per read, so
        # they only back up the deadline (`send`), which covers everything.
        self._http = httpx.AsyncClient(follow_redirects=False, timeout=httpx.Timeout(60.0))
        self._threads: anyio.CapacityLimiter | None = None

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def busy(self) -> set[str]:
        """Merchants with every turn taken in this process."""
        return {merchant for merchant, turns in self._turns.items() if turns.locked()}

    @asynccontextmanager
    async def turn(self, merchant_id: str, deadline: float) -> AsyncIterator[None]:
        """One of the merchant's turns, waited for until `deadline` (event-loop time)."""
        held = _held_turns.get()
        if merchant_id in held:
            yield
            return
        turns = self._turns.setdefault(merchant_id, asyncio.Semaphore(self.per_merchant))
        try:
            async with asyncio.timeout_at(deadline):
                await turns.acquire()
        except TimeoutError:
            raise WeChatFailure(
                "transport",
                f"timed out waiting for a turn: this merchant's {self.per_merchant} WeChat calls "
                "in flight did not finish in time",
            ) from None
        token = _held_turns.set(held | {merchant_id})
        try:
            yield
        finally:
            _held_turns.reset(token)
            turns.release()

    async def in_thread(self, fn: Callable[[], T]) -> T:
        """`fn()` in one of the WeChat worker threads (wechatpy is synchronous)."""
        if self._threads is None:
            self._threads = anyio.CapacityLimiter(THREADS)
        return await anyio.to_thread.run_sync(fn, limiter=self._threads)

    async def send(
        self,
        method: str,
        url: str,
        params: dict[str, Any] | None,
        content: bytes | str | None,
        deadline: float,
    ) -> Answer:
        """One request, its whole answer read by `deadline`; anything but a 2xx is a WeChatFailure."""
        query = {name: value for name, value in (params or {}).items() if value is not None}
        try:
            async with asyncio.timeout_at(deadline):
                async with self._http.stream(method, url, params=query, content=content) as response:
                    status = response.status_code
                    if 300 <= status < 400:
                        raise WeChatFailure("http", f"HTTP {status}: a redirect, not followed")
                    if not 200 <= status < 300:
                        raise WeChatFailure("http", f"HTTP {status}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_ANSWER_BYTES:
                            raise WeChatFailure("http", f"an answer larger than {MAX_ANSWER_BYTES} bytes")
        except TimeoutError:
            raise WeChatFailure("transport", "timed out (no whole answer before the deadline)") from None
        except httpx.ConnectError:
            raise WeChatFailure("transport", "unreachable (connection failed)") from None
        except httpx.HTTPError as exc:  # the exception's text may quote the URL
            raise WeChatFailure("transport", f"request failed ({type(exc).__name__})") from None
        return Answer(status, bytes(body))


class Transport:
    """wechatpy's `_http` for one piece of work, in its worker thread: each request goes to
    `Upstream.send` on the event loop with the work's deadline."""

    def __init__(self, upstream: Upstream, deadline: float) -> None:
        self.upstream = upstream
        self.deadline = deadline

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        data: bytes | str | None = None,
        timeout: object = None,  # wechatpy passes its own; the deadline governs
    ) -> Answer:
        return anyio.from_thread.run(self.upstream.send, method.upper(), url, params, data, self.deadline)

    def get(self, url: str, **kwargs: Any) -> Answer:
        return self.request("GET", url, **kwargs)

    def close(self) -> None:
        """The connections belong to the Upstream."""

"""wechatpy, made safe to run inside the service.

* `ServiceWeChatClient` is wechatpy's own WeChatClient with the three base URLs taken from the account,
  `auto_retry` off (it recurses without limit on 40001/42001) and its HTTP done by `upstream.Transport`:
  on the event loop, within the work's deadline, never following a redirect.
* `WeChat` runs calls in a worker thread (wechatpy is synchronous) with an access_token from the
  database, shared by every process; on 40001/40014/42001 it refreshes the token once and retries once.
  A refresh is made by one process at a time under a lease (db/leases.py): no connection, row lock or
  transaction is held while WeChat answers, and the others wait for the new token holding nothing.
* Each call is one piece of work with one deadline covering the wait for the merchant's turn, the token
  and the call itself: `timeout` seconds from its start, or, for the WeChat of an operation (`session`),
  the operation's deadline, shared by everything the operation does with WeChat.
* Every failure leaves as `WeChatFailure`, whose text never holds a URL: wechatpy puts the access_token
  (and, for the token call, the AppSecret) in URLs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from giftcards.core.sealing import Keyring
from giftcards.db import leases
from giftcards.db.pool import Connect
from giftcards.wechat import accounts
from giftcards.wechat.accounts import Account
from giftcards.wechat.upstream import Transport, Upstream, WeChatFailure

log = logging.getLogger("giftcards.wechat")

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0

__all__ = ["DEFAULT_TIMEOUT", "ServiceWeChatClient", "WeChat", "WeChatFailure", "run_sync", "session"]


class ServiceWeChatClient(WeChatClient):
    def __init__(self, account: Account, *, access_token: str | None, transport: Transport) -> None:
        super().__init__(account.appid, account.secret, access_token=access_token, auto_retry=False)
        self.API_BASE_URL = account.base_url + "cgi-bin/"
        self.card.API_BASE_URL = account.base_url  # the card API object is per client
        self.token_url = account.base_url + "cgi-bin/token"
        getattr(self, "_http").close()  # noqa: B009 (wechatpy leaves it untyped)
        self._http = transport

    def fetch_access_token(self) -> dict[str, Any]:
        # wechatpy's own fetch hard-codes api.weixin.qq.com.
        answer = self._http.get(
            self.token_url,
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )
        result: dict[str, Any] = self._handle_result(answer)
        if not isinstance(result, dict) or not isinstance(result.get("access_token"), str):
            raise WeChatFailure("http", "the token answer carries no access_token")
        return result


def run_sync(account: Account, access_token: str | None, transport: Transport, fn: Callable[[Any], T]) -> T:
    """Run `fn(client)` in this thread, every failure turned into a WeChatFailure without its cause."""
    try:
        return fn(ServiceWeChatClient(account, access_token=access_token, transport=transport))
    except WeChatFailure:
        raise
    except WeChatClientException as exc:
        if exc.errcode is None:
            status = getattr(exc.response, "status_code", None)
            raise WeChatFailure("http", f"HTTP {status}") from None
        raise WeChatFailure(
            "errcode", f"errcode {exc.errcode}: {str(exc.errmsg)[:120]}", errcode=int(exc.errcode)
        ) from None
    except (KeyError, TypeError, ValueError) as exc:  # an answer of an unexpected shape
        raise WeChatFailure("http", f"unexpected answer ({type(exc).__name__})") from None


class WeChat:
    """One merchant's WeChat, for async code: `await wechat.call(lambda client: client.card.get(...))`.

    `connect` gives a pooled connection for each short database step (the credentials); none is held
    while WeChat answers."""

    def __init__(
        self,
        connect: Connect,
        keyring: Keyring,
        account: Account,
        upstream: Upstream,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        until: float | None = None,
    ) -> None:
        self.connect = connect
        self.keyring = keyring
        self.account = account
        self.upstream = upstream
        self.timeout = timeout
        self.until = until  # an operation's deadline (event-loop time), shared by all its WeChat work
        self.token_refreshes = 0

    def deadline(self) -> float:
        """When WeChat work started now must be over (event-loop time): the operation's deadline, or
        `timeout` seconds from now. Callers share it between their calls and the waits around them."""
        if self.until is not None:
            return self.until
        return asyncio.get_running_loop().time() + self.timeout

    def turn(self, deadline: float) -> AbstractAsyncContextManager[None]:
        """One of the merchant's turns (upstream.py), for a caller that waits on WeChat work around its
        calls (a lease another call holds): the calls inside go on in it."""
        return self.upstream.turn(self.account.merchant_id, deadline)

    @property
    def lease_seconds(self) -> float:
        return self.timeout + leases.MARGIN

    async def call(self, fn: Callable[[Any], T], *, deadline: float | None = None) -> T:
        deadline = self.deadline() if deadline is None else deadline
        async with self.turn(deadline):
            token = await self._credential("access_token", deadline)
            try:
                return await self._in_thread(token, fn, deadline)
            except WeChatFailure as failure:
                if not failure.token_problem:
                    raise
                log.info(
                    "wechat access_token refused, refreshing once",
                    extra={"merchant": self.account.merchant_id, "errcode": failure.errcode},
                )
            token = await self._credential("access_token", deadline, stale=token)
            return await self._in_thread(token, fn, deadline)

    async def card_ticket(self, *, deadline: float | None = None) -> str:
        """The wx_card api_ticket for addCard signatures, fetched once and kept until it expires."""
        deadline = self.deadline() if deadline is None else deadline
        async with self.turn(deadline):
            return await self._credential("wx_card", deadline)

    async def _in_thread(self, token: str | None, fn: Callable[[Any], T], deadline: float) -> T:
        transport = Transport(self.upstream, deadline)
        return await self.upstream.in_thread(functools.partial(run_sync, self.account, token, transport, fn))

    async def _credential(self, kind: str, deadline: float, *, stale: str | None = None) -> str:
        """The live access_token or wx_card ticket; fetched when missing, expiring or equal to `stale`."""
        merchant_id = self.account.merchant_id

        async def stored(conn: asyncpg.Connection) -> str | None:
            sealed = await conn.fetchval(
                """SELECT value_sealed FROM wechat_credentials
                    WHERE merchant_id = $1 AND kind = $2 AND expires_at > now()
                      AND value_sealed IS NOT NULL""",
                merchant_id,
                kind,
            )
            value = self._open(kind, sealed) if sealed is not None else None
            return None if value == stale else value

        async def fetch() -> str:
            value, expires_in = await self._fetch(kind, deadline)
            # Refresh a minute early (or half-way, for short lifetimes), as wechatpy does.
            usable = max(1, expires_in - min(60, expires_in // 2))
            async with self.connect() as conn:
                # Kept only while the account is the one it was fetched for: new settings meanwhile
                # (another appid, secret or base URL) dropped the old credentials, and must not get them back.
                await conn.execute(
                    """INSERT INTO wechat_credentials
                              (merchant_id, kind, value_sealed, fetched_at, expires_at)
                       SELECT $1, $2, $3, now(), now() + make_interval(secs => $4)
                         FROM wechat_accounts WHERE merchant_id = $1 AND updated_at = $5
                       ON CONFLICT (merchant_id, kind) DO UPDATE
                             SET value_sealed = EXCLUDED.value_sealed, fetched_at = EXCLUDED.fetched_at,
                                 expires_at = EXCLUDED.expires_at""",
                    merchant_id,
                    kind,
                    self.keyring.box.seal(value.encode(), context=self._context(kind)),
                    float(usable),
                    self.account.updated_at,
                )
            return value

        try:
            _, value = await leases.once(
                self.connect,
                merchant_id,
                f"wechat-credential:{kind}",
                seconds=self.lease_seconds,
                until=deadline,
                existing=stored,
                make=fetch,
            )
        except leases.Busy:
            raise WeChatFailure(
                "transport", f"timed out waiting for another process's {kind} refresh"
            ) from None
        return value

    async def _fetch(self, kind: str, deadline: float) -> tuple[str, int]:
        if kind == "access_token":
            self.token_refreshes += 1
            result = await self._in_thread(None, lambda client: client.fetch_access_token(), deadline)
            return result["access_token"], int(result.get("expires_in", 7200))
        result = await self.call(lambda client: client.jsapi.get_ticket("wx_card"), deadline=deadline)
        if not isinstance(result, dict) or not isinstance(result.get("ticket"), str):
            raise WeChatFailure("http", "the ticket answer carries no ticket")
        return result["ticket"], int(result.get("expires_in", 7200))

    def _context(self, kind: str) -> bytes:
        return f"wechat-credential:{kind}:{self.account.merchant_id}".encode()

    def _open(self, kind: str, sealed: bytes) -> str:
        return self.keyring.box.open(bytes(sealed), context=self._context(kind)).decode()


@asynccontextmanager
async def session(
    connect: Connect, keyring: Keyring, upstream: Upstream, merchant_id: str, *, timeout: float
) -> AsyncIterator[WeChat]:
    """The WeChat of one operation (a back-office or page request): everything it does with WeChat ends
    within `timeout` seconds, and it runs in one of the merchant's turns, taken before anything else
    (even reading the account), so that at most `Upstream.per_merchant` of a merchant's operations use
    connections and WeChat at once in this process; the rest wait for a turn holding nothing."""
    until = asyncio.get_running_loop().time() + timeout
    async with upstream.turn(merchant_id, until):
        async with connect() as conn:
            account = await accounts.load(conn, keyring, merchant_id)
        yield WeChat(connect, keyring, account, upstream, timeout=timeout, until=until)

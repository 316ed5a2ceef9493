"""wechatpy, made safe to run inside the service.

* `ServiceWeChatClient` is wechatpy's own WeChatClient with the three base URLs taken from the account,
  `auto_retry` off (it recurses without limit on 40001/42001) and a timeout on every request, the token
  fetch included.
* `WeChat` runs calls in a worker thread (wechatpy is synchronous) with an access_token from the
  database, shared by every process; on 40001/40014/42001 it refreshes the token once, under a row lock so
  that concurrent processes fetch one token between them, and retries once.
* Every failure leaves as `WeChatFailure`, whose text never holds a URL: wechatpy and requests put the
  access_token (and, for the token call, the AppSecret) in URLs, and their messages quote them.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import asyncpg
import requests
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException

from giftcards.secrets_box import Keyring
from giftcards.wechat.accounts import Account

log = logging.getLogger("giftcards.wechat")

T = TypeVar("T")

DEFAULT_TIMEOUT = 5.0
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})  # invalid credential, invalid token, token expired
TRANSIENT_ERRCODES = frozenset({-1, 45009, 45011})  # system busy, API quota, API minute limit
_local = threading.local()


class WeChatFailure(Exception):
    """A call to WeChat that did not succeed. `kind`: transport | http | errcode (| internal, for our own
    failure around a call). Safe to log and show."""

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


class ServiceWeChatClient(WeChatClient):
    def __init__(self, account: Account, *, access_token: str | None, timeout: float) -> None:
        super().__init__(
            account.appid, account.secret, access_token=access_token, timeout=timeout, auto_retry=False
        )
        self.API_BASE_URL = account.base_url + "cgi-bin/"
        self.card.API_BASE_URL = account.base_url  # the card API object is per client
        self.token_url = account.base_url + "cgi-bin/token"
        # One HTTP connection pool per thread, reused across calls (wechatpy makes one per client).
        session = getattr(_local, "session", None)
        if session is None:
            session = _local.session = requests.Session()
        getattr(self, "_http").close()  # noqa: B009 (wechatpy leaves it untyped)
        self._http = session

    def fetch_access_token(self) -> dict[str, Any]:
        # wechatpy's own fetch hard-codes api.weixin.qq.com and sends no timeout.
        response = self._http.get(
            self.token_url,
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
            timeout=self.timeout,
        )
        response.raise_for_status()
        result: dict[str, Any] = self._handle_result(response)
        if not isinstance(result, dict) or not isinstance(result.get("access_token"), str):
            raise WeChatFailure("http", "the token answer carries no access_token")
        return result


def run_sync(account: Account, access_token: str | None, timeout: float, fn: Callable[[Any], T]) -> T:
    """Run `fn(client)` in this thread, every failure turned into a WeChatFailure without its cause."""
    try:
        return fn(ServiceWeChatClient(account, access_token=access_token, timeout=timeout))
    except WeChatFailure:
        raise
    except WeChatClientException as exc:
        if exc.errcode is None:
            status = getattr(exc.response, "status_code", None)
            raise WeChatFailure("http", f"HTTP {status}") from None
        raise WeChatFailure(
            "errcode", f"errcode {exc.errcode}: {str(exc.errmsg)[:120]}", errcode=int(exc.errcode)
        ) from None
    except requests.Timeout:
        raise WeChatFailure("transport", "timed out") from None
    except requests.ConnectionError:
        raise WeChatFailure("transport", "unreachable (connection failed)") from None
    except requests.RequestException as exc:
        raise WeChatFailure("transport", f"request failed ({type(exc).__name__})") from None
    except (KeyError, TypeError, ValueError) as exc:  # an answer of an unexpected shape
        raise WeChatFailure("http", f"unexpected answer ({type(exc).__name__})") from None


class WeChat:
    """One merchant's WeChat, for async code: `await wechat.call(lambda client: client.card.get(...))`."""

    def __init__(
        self, pool: asyncpg.Pool, keyring: Keyring, account: Account, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.pool = pool
        self.keyring = keyring
        self.account = account
        self.timeout = timeout
        self.token_refreshes = 0

    async def call(self, fn: Callable[[Any], T]) -> T:
        token = await self._credential("access_token")
        try:
            return await self._in_thread(token, fn)
        except WeChatFailure as failure:
            if not failure.token_problem:
                raise
            log.info(
                "wechat access_token refused, refreshing once",
                extra={"merchant": self.account.merchant_id, "errcode": failure.errcode},
            )
        token = await self._credential("access_token", stale=token)
        return await self._in_thread(token, fn)

    async def card_ticket(self) -> str:
        """The wx_card api_ticket for addCard signatures, fetched once and kept until it expires."""
        return await self._credential("wx_card")

    async def _in_thread(self, token: str | None, fn: Callable[[Any], T]) -> T:
        work = functools.partial(run_sync, self.account, token, self.timeout, fn)
        return await anyio.to_thread.run_sync(work)

    async def _credential(self, kind: str, *, stale: str | None = None) -> str:
        """The live access_token or wx_card ticket; fetched when missing, expiring or equal to `stale`."""
        merchant_id = self.account.merchant_id
        async with self.pool.acquire() as conn:
            if stale is None:
                row = await conn.fetchrow(
                    """SELECT value_sealed FROM wechat_credentials
                        WHERE merchant_id = $1 AND kind = $2 AND expires_at > now()
                          AND value_sealed IS NOT NULL""",
                    merchant_id,
                    kind,
                )
                if row is not None:
                    return self._open(kind, row["value_sealed"])
            async with conn.transaction():
                # One fetch for all processes: the others wait on the row lock, then take the new value.
                await conn.execute(
                    """INSERT INTO wechat_credentials (merchant_id, kind) VALUES ($1, $2)
                       ON CONFLICT (merchant_id, kind) DO NOTHING""",
                    merchant_id,
                    kind,
                )
                row = await conn.fetchrow(
                    """SELECT value_sealed, expires_at > now() AS live FROM wechat_credentials
                        WHERE merchant_id = $1 AND kind = $2 FOR UPDATE""",
                    merchant_id,
                    kind,
                )
                if row["value_sealed"] is not None and row["live"]:
                    current = self._open(kind, row["value_sealed"])
                    if current != stale:
                        return current
                value, expires_in = await self._fetch(kind)
                # Refresh a minute early (or half-way, for short lifetimes), as wechatpy does.
                usable = max(1, expires_in - min(60, expires_in // 2))
                await conn.execute(
                    """UPDATE wechat_credentials
                          SET value_sealed = $3, fetched_at = now(),
                              expires_at = now() + make_interval(secs => $4)
                        WHERE merchant_id = $1 AND kind = $2""",
                    merchant_id,
                    kind,
                    self.keyring.box.seal(value.encode(), context=self._context(kind)),
                    float(usable),
                )
                return value

    async def _fetch(self, kind: str) -> tuple[str, int]:
        if kind == "access_token":
            self.token_refreshes += 1
            result = await self._in_thread(None, lambda client: client.fetch_access_token())
            return result["access_token"], int(result.get("expires_in", 7200))
        result = await self.call(lambda client: client.jsapi.get_ticket("wx_card"))
        if not isinstance(result, dict) or not isinstance(result.get("ticket"), str):
            raise WeChatFailure("http", "the ticket answer carries no ticket")
        return result["ticket"], int(result.get("expires_in", 7200))

    def _context(self, kind: str) -> bytes:
        return f"wechat-credential:{kind}:{self.account.merchant_id}".encode()

    def _open(self, kind: str, sealed: bytes) -> str:
        return self.keyring.box.open(bytes(sealed), context=self._context(kind)).decode()

"""A WeChat stand-in: tokens, the card API, failures and event pushes of api.weixin.qq.com, on 127.0.0.1.

It speaks real HTTP so the unmodified wechatpy client (only its base URLs pointed here) runs its whole
stack: requests, JSON, errcodes, timeouts, refused connections. Rules follow WeChat's documentation;
where the documentation is silent, the choice is written next to the code that makes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import math
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import uvicorn
import xmltodict
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from wechatpy.crypto import WeChatCrypto

from tests.support.uvicorn_thread import listening_socket, serve_in_thread

log = logging.getLogger("wechat_standin")

DEFAULT_APPID = "wx57a4d10000000001"
DEFAULT_SECRET = "5a4d1e5ec2e7000000000000000000aa"
DEFAULT_ORIGINAL_ID = "gh_57a4d1000001"

# Errcodes as WeChat's global return-code table and card docs name them.
SYSTEM_BUSY = -1
INVALID_CREDENTIAL = 40001
INVALID_GRANT_TYPE = 40002
INVALID_APPID = 40013
INVALID_ACTION_INFO = 40053
INVALID_SERIAL_CODE = 40056
INVALID_CARD_TYPE = 40071
INVALID_CODE_TYPE = 40072
INVALID_CARD_ID = 40073
INVALID_TIME = 40079
INVALID_ARGS = 40097
CODE_CONSUMED = 40099
TOO_MANY_CODES = 40109
INVALID_APPSECRET = 40125
INVALID_USER_CARD_STATUS = 40127
INVALID_DEPOSIT_MODE = 40136
ACCESS_TOKEN_MISSING = 41001
APPID_MISSING = 41002
APPSECRET_MISSING = 41004
MISSING_REQUIRED_FIELDS = 41011
ACCESS_TOKEN_EXPIRED = 42001
REQUIRE_POST = 43002
RATE_LIMITED = 45009
DATA_FORMAT_ERROR = 47001
API_UNAUTHORIZED = 48001

DEFAULT_ERRMSG = {
    SYSTEM_BUSY: "system error",
    RATE_LIMITED: "reach max api daily quota limit",
}

DEPOSIT_MODE = "GET_CUSTOM_CODE_MODE_DEPOSIT"
CODE_TYPES = {
    "CODE_TYPE_TEXT",
    "CODE_TYPE_BARCODE",
    "CODE_TYPE_QRCODE",
    "CODE_TYPE_ONLY_QRCODE",
    "CODE_TYPE_ONLY_BARCODE",
    "CODE_TYPE_NONE",
}
BASE_INFO_REQUIRED = (
    "logo_url",
    "brand_name",
    "code_type",
    "title",
    "color",
    "notice",
    "description",
    "date_info",
    "sku",
)
MAX_CODES_PER_CALL = 100
QR_DEFAULT_EXPIRE = 365 * 86400  # "不填默认为365天有效"

# user_card_status values, plus DEPOSITED: the stand-in's name for a code still in the deposit pool.
DEPOSITED, NORMAL, CONSUMED, EXPIRE = "DEPOSITED", "NORMAL", "CONSUMED", "EXPIRE"
GIFTING, GIFT_TIMEOUT, DELETE, UNAVAILABLE = "GIFTING", "GIFT_TIMEOUT", "DELETE", "UNAVAILABLE"

JsonObj = dict[str, Any]


class WeChatError(Exception):
    """An errcode answer, raised inside a handler and rendered the way WeChat renders it."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    def payload(self) -> JsonObj:
        # Real errmsgs end in a request id; clients must key on errcode, never parse errmsg.
        rid = "-".join(secrets.token_hex(4) for _ in range(3))
        return {"errcode": self.errcode, "errmsg": f"{self.errmsg} rid: {rid}"}


class UserActionError(Exception):
    """A simulated user action that WeChat's app would refuse (unknown code, no stock, bad cardExt)."""


# --- addCard cardExt -------------------------------------------------------------------------------------


def card_ext_signature(
    *,
    api_ticket: str,
    timestamp: str | int,
    card_id: str,
    code: str = "",
    openid: str = "",
    nonce_str: str = "",
) -> str:
    """SHA1 of the non-empty values, sorted lexicographically and concatenated (WeChat's addCard rule)."""
    values = [str(v) for v in (api_ticket, timestamp, card_id, code, openid, nonce_str) if str(v)]
    return hashlib.sha1("".join(sorted(values)).encode()).hexdigest()


def verify_card_ext_signature(card_ext: str | Mapping[str, Any], *, api_ticket: str, card_id: str) -> bool:
    """Check a cardExt (JSON string or dict) as WeChat does before it puts the card in the wallet."""
    ext = json.loads(card_ext) if isinstance(card_ext, str) else dict(card_ext)
    expected = card_ext_signature(
        api_ticket=api_ticket,
        timestamp=ext.get("timestamp", ""),
        card_id=card_id,
        code=ext.get("code", ""),
        openid=ext.get("openid", ""),
        nonce_str=ext.get("nonce_str", ""),
    )
    return secrets.compare_digest(expected, str(ext.get("signature", "")))


# --- state -------------------------------------------------------------------------------------------------


@dataclass
class BalanceUpdate:
    """One card/generalcard/updateuser call as WeChat applied it."""

    at: float
    balance_before: int
    balance: int
    record_balance: str
    request: JsonObj


@dataclass
class CardCode:
    """One code of one card: in the deposit pool, or in somebody's wallet."""

    card_id: str
    code: str
    status: str = DEPOSITED
    openid: str | None = None
    balance: int = 0
    begin_time: int = 0
    end_time: int = 0
    outer_str: str = ""
    fields: JsonObj = field(default_factory=dict)  # last custom_field_value*, background_pic_url, ...
    updates: list[BalanceUpdate] = field(default_factory=list)
    history: list[tuple[float, str]] = field(default_factory=list)
    pending_friend: str | None = None
    unavailable_reason: str = ""

    @property
    def record_balances(self) -> list[str]:
        return [u.record_balance for u in self.updates]

    def user_card_status(self, now: float) -> str:
        if self.status == NORMAL and self.end_time and now > self.end_time:
            return EXPIRE
        return self.status

    def move(self, status: str, at: float, note: str = "") -> None:
        self.status = status
        self.history.append((at, f"{status} {note}".strip()))


@dataclass
class Card:
    """A card definition as card/create accepted it, plus its live stock."""

    card_id: str
    definition: JsonObj
    quantity: int
    total_quantity: int
    created_at: float
    deposited: set[str] = field(default_factory=set)  # every code ever deposited (getdepositcount)

    @property
    def base_info(self) -> JsonObj:
        return self.definition["general_card"]["base_info"]

    @property
    def deposit_mode(self) -> bool:
        return self.base_info.get("get_custom_code_mode") == DEPOSIT_MODE

    @property
    def use_custom_code(self) -> bool:
        return bool(self.base_info.get("use_custom_code"))

    def validity(self, received_at: float) -> tuple[int, int]:
        """begin/end of a code received at `received_at` (FIX_TERM counts whole days from then)."""
        info = self.base_info["date_info"]
        if info["type"] == "DATE_TYPE_FIX_TIME_RANGE":
            return int(info["begin_timestamp"]), int(info["end_timestamp"])
        if info["type"] == "DATE_TYPE_FIX_TERM":
            begin = int(received_at) + int(info.get("fixed_begin_term", 0)) * 86400
            return begin, begin + int(info["fixed_term"]) * 86400
        return 0, 0


@dataclass
class Credential:
    """An access_token or a JS-API ticket (kind "wx_card" / "jsapi")."""

    value: str
    kind: str
    issued_at: float
    expires_at: float
    superseded_at: float | None = None


@dataclass
class QrCode:
    ticket: str
    url: str
    card_id: str
    code: str | None
    openid: str | None
    outer_str: str
    is_unique_code: bool
    expires_at: float
    scans: int = 0


@dataclass
class CallRecord:
    """One HTTP call to the WeChat API surface, as received and as answered."""

    seq: int
    at: float
    method: str
    path: str
    query: dict[str, str]
    body: Any
    status_code: int
    response: Any
    fault: str | None
    duration: float

    @property
    def errcode(self) -> int | None:
        if not isinstance(self.response, dict):
            return None
        return int(self.response.get("errcode", 0))


class StandinState:
    """Everything WeChat would remember; mutate only while holding `lock` (the server thread shares it)."""

    def __init__(
        self, appid: str, secret: str, *, token_lifetime: float, ticket_lifetime: float, token_overlap: float
    ) -> None:
        self.lock = threading.RLock()
        self.appid, self.secret = appid, secret
        self.token_lifetime, self.ticket_lifetime, self.token_overlap = (
            token_lifetime,
            ticket_lifetime,
            token_overlap,
        )
        self.clock_offset = 0.0
        self.cards: dict[str, Card] = {}
        self.codes: dict[tuple[str, str], CardCode] = {}
        self.credentials: dict[str, Credential] = {}
        self.qrcodes: dict[str, QrCode] = {}

    def now(self) -> float:
        return time.time() + self.clock_offset

    def clear(self, *, keep_tokens: bool) -> None:
        with self.lock:
            self.clock_offset = 0.0
            self.cards.clear()
            self.codes.clear()
            self.qrcodes.clear()
            if not keep_tokens:
                self.credentials.clear()

    def issue(self, kind: str) -> Credential:
        """A new token supersedes the old ones, which keep working for `token_overlap` seconds (as WeChat)."""
        now = self.now()
        lifetime = self.token_lifetime if kind == "access_token" else self.ticket_lifetime
        if kind == "access_token":
            for old in self.tokens():
                old.superseded_at = old.superseded_at or now
        cred = Credential(secrets.token_urlsafe(102), kind, now, now + lifetime)
        self.credentials[cred.value] = cred
        return cred

    def tokens(self) -> list[Credential]:
        return [c for c in self.credentials.values() if c.kind == "access_token"]

    def check_token(self, value: str | None) -> None:
        if not value:
            raise WeChatError(ACCESS_TOKEN_MISSING, "access_token missing")
        cred = self.credentials.get(value)
        now = self.now()
        if (
            cred is None
            or cred.kind != "access_token"
            or (cred.superseded_at is not None and now > cred.superseded_at + self.token_overlap)
        ):
            raise WeChatError(INVALID_CREDENTIAL, "invalid credential, access_token is invalid or not latest")
        if now >= cred.expires_at:
            raise WeChatError(ACCESS_TOKEN_EXPIRED, "access_token expired")

    def valid_tickets(self, kind: str = "wx_card") -> list[str]:
        now = self.now()
        return [c.value for c in self.credentials.values() if c.kind == kind and now < c.expires_at]

    def card(self, card_id: Any) -> Card:
        card = self.cards.get(card_id) if isinstance(card_id, str) else None
        if card is None:
            raise WeChatError(INVALID_CARD_ID, "invalid card id")
        return card

    def held_code(self, card_id: Any, code: Any) -> CardCode:
        """A code in somebody's wallet; pooled or unknown codes are "invalid serial code" to WeChat."""
        if not card_id:
            matches = [c for (_, k), c in self.codes.items() if k == code]
            if len(matches) == 1 and not self.cards[matches[0].card_id].use_custom_code:
                card_id = matches[0].card_id
            elif matches:
                raise WeChatError(MISSING_REQUIRED_FIELDS, "card_id is required for custom code cards")
        rec = self.codes.get((card_id, code))
        if rec is None or rec.status == DEPOSITED:
            raise WeChatError(INVALID_SERIAL_CODE, "invalid serial code")
        return rec

    def pool(self, card_id: str) -> list[CardCode]:
        return [c for c in self.codes.values() if c.card_id == card_id and c.status == DEPOSITED]

    def snapshot(self) -> JsonObj:
        with self.lock:
            return {
                "now": self.now(),
                "cards": {k: {**asdict(v), "deposited": sorted(v.deposited)} for k, v in self.cards.items()},
                "codes": [asdict(c) for c in self.codes.values()],
                "qrcodes": {k: asdict(v) for k, v in self.qrcodes.items()},
                "tokens": [asdict(c) for c in self.tokens()],
            }


# --- faults ------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    """A failure applied to the next `times` matching calls (`times=None`: every call until cleared)."""

    kind: Literal["errcode", "http_status", "slow"]
    path: str | None = None  # e.g. "card/code/consume"; None matches every WeChat API path
    times: int | None = 1
    errcode: int = SYSTEM_BUSY
    errmsg: str = ""
    status: int = 503
    seconds: float = 0.0
    apply_first: bool = True  # slow: the call takes effect before the delay (answer lost, effect kept)

    def answer(self) -> tuple[int, JsonObj | str]:
        if self.kind == "http_status":
            return self.status, f"<html><body><h1>{self.status}</h1></body></html>"
        return 200, WeChatError(
            self.errcode, self.errmsg or DEFAULT_ERRMSG.get(self.errcode, "error")
        ).payload()


class FaultPlan:
    """Failures on demand, consumed in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in ("errcode", "http_status", "slow"):
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        if fault.times is not None and fault.times < 1:
            raise ValueError("times must be >= 1, or None for every call until cleared")
        with self._lock:
            self._faults.append(fault)
        return fault

    def errcode(
        self, errcode: int, errmsg: str = "", *, path: str | None = None, times: int | None = 1
    ) -> Fault:
        return self.add(Fault("errcode", path, times, errcode=errcode, errmsg=errmsg))

    def system_busy(self, *, path: str | None = None, times: int | None = 1) -> Fault:
        return self.errcode(SYSTEM_BUSY, path=path, times=times)

    def rate_limit(self, *, path: str | None = None, times: int | None = 1) -> Fault:
        return self.errcode(RATE_LIMITED, path=path, times=times)

    def fail_next(self, n: int, path: str, errcode: int = SYSTEM_BUSY, errmsg: str = "") -> Fault:
        return self.errcode(errcode, errmsg, path=path, times=n)

    def http_error(self, status: int = 503, *, path: str | None = None, times: int | None = 1) -> Fault:
        return self.add(Fault("http_status", path, times, status=status))

    def slow(
        self, seconds: float, *, path: str | None = None, times: int | None = 1, apply_first: bool = True
    ) -> Fault:
        return self.add(Fault("slow", path, times, seconds=seconds, apply_first=apply_first))

    def take(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path in (None, path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)


# --- event pushes ------------------------------------------------------------------------------------------


@dataclass
class CallbackConfig:
    """Where and how events are pushed: the server URL/Token/EncodingAESKey of the official account."""

    url: str
    token: str
    mode: Literal["plain", "aes"] = "plain"
    encoding_aes_key: str | None = None
    timeout: float = 5.0
    # "总共重试三次" / "a maximum of three retries": developers observe three requests in all.
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.mode == "aes" and not self.encoding_aes_key:
            raise ValueError("aes mode needs encoding_aes_key (43 characters)")


@dataclass
class PushAttempt:
    number: int
    status_code: int | None
    body: str | None
    error: str | None
    elapsed: float
    accepted: bool


@dataclass
class PushResult:
    """One event WeChat emitted, and every attempt to deliver it (none when no callback is configured)."""

    event: str
    openid: str
    fields: JsonObj
    xml: str
    attempts: list[PushAttempt] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        return any(a.accepted for a in self.attempts)


def event_xml(
    *, to_user: str, from_user: str, create_time: int, event: str, fields: Mapping[str, Any]
) -> str:
    """The plaintext event as WeChat writes it: strings in CDATA, integers bare."""

    def element(name: str, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return f"<{name}>{value}</{name}>"
        text = str(value).replace("]]>", "]]]]><![CDATA[>")
        return f"<{name}><![CDATA[{text}]]></{name}>"

    head = {
        "ToUserName": to_user,
        "FromUserName": from_user,
        "CreateTime": create_time,
        "MsgType": "event",
        "Event": event,
    }
    return "<xml>" + "".join(element(k, v) for k, v in {**head, **fields}.items()) + "</xml>"


def _accepted(response: httpx.Response) -> bool:
    """WeChat stops retrying on "success", an empty body, or a passive XML reply."""
    body = response.text.strip()
    return response.is_success and (body in ("", "success") or body.startswith("<xml"))


def deliver(
    config: CallbackConfig, *, appid: str, original_id: str, openid: str, xml: str, timestamp: int
) -> list[PushAttempt]:
    """POST one event, re-sending the identical request until accepted or attempts run out."""
    nonce = "".join(secrets.choice(string.digits) for _ in range(10))
    query = {
        "signature": hashlib.sha1(
            "".join(sorted([config.token, str(timestamp), nonce])).encode()
        ).hexdigest(),
        "timestamp": str(timestamp),
        "nonce": nonce,
        "openid": openid,
    }
    body = xml
    if config.mode == "aes":
        crypto = WeChatCrypto(config.token, config.encoding_aes_key, appid)
        sealed = xmltodict.parse(crypto.encrypt_message(xml, nonce, str(timestamp)))["xml"]
        body = (
            f"<xml><ToUserName><![CDATA[{original_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{sealed['Encrypt']}]]></Encrypt></xml>"
        )
        query |= {"encrypt_type": "aes", "msg_signature": sealed["MsgSignature"]}
    attempts: list[PushAttempt] = []
    with httpx.Client(timeout=config.timeout, trust_env=False) as http:
        for number in range(1, config.max_attempts + 1):
            started = time.monotonic()
            try:
                r = http.post(
                    config.url, params=query, content=body.encode(), headers={"Content-Type": "text/xml"}
                )
                attempt = PushAttempt(
                    number, r.status_code, r.text, None, time.monotonic() - started, _accepted(r)
                )
            except httpx.TimeoutException:
                attempt = PushAttempt(number, None, None, "timeout", time.monotonic() - started, False)
            except httpx.TransportError as exc:
                attempt = PushAttempt(
                    number, None, None, f"{type(exc).__name__}: {exc}", time.monotonic() - started, False
                )
            attempts.append(attempt)
            log.info("push attempt %d -> %s", number, attempt.status_code or attempt.error)
            if attempt.accepted:
                break
    return attempts


# --- the WeChat API ----------------------------------------------------------------------------------------


def _json_body(raw: bytes) -> JsonObj:
    if not raw.strip():
        raise WeChatError(44002, "empty post data")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise WeChatError(DATA_FORMAT_ERROR, "data format error") from exc
    if not isinstance(body, dict):
        raise WeChatError(DATA_FORMAT_ERROR, "data format error")
    return body


def _obj(container: JsonObj, key: str) -> JsonObj:
    value = container.get(key)
    if value is None:
        raise WeChatError(MISSING_REQUIRED_FIELDS, f"missing required fields: {key}")
    if not isinstance(value, dict):
        raise WeChatError(DATA_FORMAT_ERROR, f"data format error: {key} must be an object")
    return value


def _int(value: Any, name: str, *, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise WeChatError(DATA_FORMAT_ERROR, f"data format error: {name} must be an integer")
    if value < minimum:
        raise WeChatError(INVALID_ARGS, f"invalid args: {name} must be >= {minimum}")
    return value


def _code_list(body: JsonObj) -> list[Any]:
    codes = body.get("code")
    if codes is None:
        raise WeChatError(MISSING_REQUIRED_FIELDS, "missing required fields: code")
    if not isinstance(codes, list):
        raise WeChatError(DATA_FORMAT_ERROR, "data format error: code must be a list")
    if len(codes) > MAX_CODES_PER_CALL:
        raise WeChatError(TOO_MANY_CODES, f"too many codes: at most {MAX_CODES_PER_CALL} per call")
    return codes


def _check_validity_rule(info: Any) -> None:
    if not isinstance(info, dict):
        raise WeChatError(INVALID_TIME, "invalid time: date_info")
    kind = info.get("type")
    if kind == "DATE_TYPE_FIX_TIME_RANGE":
        begin, end = info.get("begin_timestamp"), info.get("end_timestamp")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 < begin < end):
            raise WeChatError(INVALID_TIME, "invalid time: begin_timestamp/end_timestamp")
    elif kind == "DATE_TYPE_FIX_TERM":
        term, begin_term = info.get("fixed_term"), info.get("fixed_begin_term", 0)
        if not (isinstance(term, int) and term > 0 and isinstance(begin_term, int) and begin_term >= 0):
            raise WeChatError(INVALID_TIME, "invalid time: fixed_term/fixed_begin_term")
    elif kind != "DATE_TYPE_PERMANENT":
        raise WeChatError(INVALID_TIME, f"invalid time: date_info.type {kind!r}")


def _whole_seconds(lifetime: float) -> int:
    return max(1, math.ceil(lifetime))


class WeChatApi:
    """The WeChat API paths the service uses: check, apply to state, answer like WeChat."""

    UNAUTHENTICATED = {"cgi-bin/token"}
    GET_PATHS = {"cgi-bin/token", "cgi-bin/ticket/getticket"}

    def __init__(self, state: StandinState) -> None:
        self.state = state
        self.routes: dict[str, Callable[[dict[str, str], JsonObj], JsonObj]] = {
            "cgi-bin/token": self.token,
            "cgi-bin/ticket/getticket": self.getticket,
            "card/create": self.create_card,
            "card/get": self.get_card,
            "card/modifystock": self.modify_stock,
            "card/code/deposit": self.deposit,
            "card/code/getdepositcount": self.get_deposit_count,
            "card/code/checkcode": self.check_code,
            "card/qrcode/create": self.create_qrcode,
            "card/code/get": self.get_code,
            "card/code/consume": self.consume,
            "card/code/unavailable": self.unavailable,
            "card/generalcard/updateuser": self.update_user,
        }

    def handle(self, method: str, path: str, query: dict[str, str], raw: bytes) -> JsonObj:
        handler = self.routes.get(path)
        try:
            if handler is None:
                raise WeChatError(
                    API_UNAUTHORIZED, f"api unauthorized (the stand-in does not model {path!r})"
                )
            if path not in self.GET_PATHS and method != "POST":
                raise WeChatError(REQUIRE_POST, "require POST method")
            with self.state.lock:
                if path not in self.UNAUTHENTICATED:
                    self.state.check_token(query.get("access_token"))
                body = {} if path in self.GET_PATHS else _json_body(raw)
                result = handler(query, body)
        except WeChatError as exc:
            return exc.payload()
        if path == "cgi-bin/token":
            return result  # WeChat's documented token answer carries no errcode
        return {"errcode": 0, "errmsg": "ok", **result}

    def token(self, query: dict[str, str], _: JsonObj) -> JsonObj:
        st = self.state
        if query.get("grant_type") != "client_credential":
            raise WeChatError(INVALID_GRANT_TYPE, "invalid grant_type")
        if not query.get("appid"):
            raise WeChatError(APPID_MISSING, "appid missing")
        if query["appid"] != st.appid:
            raise WeChatError(INVALID_APPID, "invalid appid")
        if not query.get("secret"):
            raise WeChatError(APPSECRET_MISSING, "appsecret missing")
        if not secrets.compare_digest(query["secret"], st.secret):
            raise WeChatError(INVALID_APPSECRET, "invalid appsecret")
        cred = st.issue("access_token")
        return {"access_token": cred.value, "expires_in": _whole_seconds(st.token_lifetime)}

    def getticket(self, query: dict[str, str], _: JsonObj) -> JsonObj:
        kind = query.get("type")
        if kind not in ("wx_card", "jsapi"):
            raise WeChatError(INVALID_ARGS, "invalid args: type must be wx_card or jsapi")
        cred = self.state.issue(kind)
        return {"ticket": cred.value, "expires_in": _whole_seconds(self.state.ticket_lifetime)}

    def create_card(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        card = _obj(body, "card")
        if card.get("card_type") != "GENERAL_CARD":
            raise WeChatError(INVALID_CARD_TYPE, "invalid card type (the stand-in models GENERAL_CARD only)")
        general = _obj(card, "general_card")
        if general.get("sub_card_type") != "GIFT_CARD":
            raise WeChatError(INVALID_CARD_TYPE, "invalid card type (sub_card_type must be GIFT_CARD)")
        base = _obj(general, "base_info")
        missing = [k for k in BASE_INFO_REQUIRED if k not in base]
        if missing:
            raise WeChatError(MISSING_REQUIRED_FIELDS, f"missing required fields: {', '.join(missing)}")
        if base["code_type"] not in CODE_TYPES:
            raise WeChatError(INVALID_CODE_TYPE, "invalid code type")
        # Field widths from the docs: title string(27) "9个汉字", brand_name string(36) "12个汉字".
        for key, limit in (("title", 27), ("brand_name", 36)):
            if not isinstance(base[key], str) or not base[key] or len(base[key].encode()) > limit:
                raise WeChatError(INVALID_ARGS, f"invalid args: {key} must be 1..{limit} bytes of UTF-8")
        _check_validity_rule(base["date_info"])
        quantity = _int(_obj(base, "sku").get("quantity"), "sku.quantity")
        mode = base.get("get_custom_code_mode")
        if mode is not None and mode != DEPOSIT_MODE:
            raise WeChatError(INVALID_ARGS, f"invalid args: get_custom_code_mode {mode!r}")
        if mode == DEPOSIT_MODE and (base.get("use_custom_code") is not True or quantity != 0):
            # WeChat's own wording for this refusal.
            raise WeChatError(
                INVALID_DEPOSIT_MODE,
                "invalid use DepositCodeMode, make sure sku.quantity>DepositCode.quantity",
            )
        card_id = "p" + "".join(
            secrets.choice(string.ascii_letters + string.digits + "-_") for _ in range(27)
        )
        self.state.cards[card_id] = Card(card_id, copy.deepcopy(card), quantity, quantity, self.state.now())
        return {"card_id": card_id}

    def get_card(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        card = self.state.card(body.get("card_id"))
        definition = copy.deepcopy(card.definition)
        definition["general_card"]["base_info"].update(
            id=card.card_id,
            status="CARD_STATUS_VERIFY_OK",
            sku={"quantity": card.quantity, "total_quantity": card.total_quantity},
        )
        return {"card": definition}

    def modify_stock(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        card = self.state.card(body.get("card_id"))
        increase = _int(body.get("increase_stock_value", 0), "increase_stock_value")
        reduce = _int(body.get("reduce_stock_value", 0), "reduce_stock_value")
        if not increase and not reduce:
            raise WeChatError(MISSING_REQUIRED_FIELDS, "missing required fields: increase_stock_value")
        new = card.quantity + increase - reduce
        if new < 0:
            raise WeChatError(INVALID_ARGS, "invalid args: stock cannot go below 0")
        # Deposit mode: "需令卡券库存小于或等于导入code的数目" -- counted here as codes still in the pool,
        # since every card handed out takes one code from the pool and one unit of stock.
        pooled = len(self.state.pool(card.card_id))
        if card.deposit_mode and new > pooled:
            raise WeChatError(
                INVALID_DEPOSIT_MODE,
                f"invalid use DepositCodeMode, stock {new} exceeds {pooled} unassigned deposited codes",
            )
        card.quantity = new
        card.total_quantity = max(0, card.total_quantity + increase - reduce)
        return {}

    def deposit(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        card = self.state.card(body.get("card_id"))
        if not card.deposit_mode:
            raise WeChatError(
                INVALID_DEPOSIT_MODE, f"invalid use DepositCodeMode: card is not {DEPOSIT_MODE}"
            )
        succ: list[Any] = []
        duplicate: list[Any] = []
        fail: list[Any] = []
        for code in _code_list(body):
            if not isinstance(code, str) or not code.strip():
                fail.append(code)
            elif code in card.deposited:
                duplicate.append(code)  # "重复导入的code会自动被过滤"
            else:
                card.deposited.add(code)
                rec = CardCode(card.card_id, code)
                rec.history.append((self.state.now(), DEPOSITED))
                self.state.codes[(card.card_id, code)] = rec
                succ.append(code)
        return {"succ_code": succ, "duplicate_code": duplicate, "fail_code": fail}

    def get_deposit_count(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        return {"count": len(self.state.card(body.get("card_id")).deposited)}

    def check_code(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        card = self.state.card(body.get("card_id"))
        codes = _code_list(body)
        return {
            "exist_code": [c for c in codes if c in card.deposited],
            "not_exist_code": [c for c in codes if c not in card.deposited],
        }

    def create_qrcode(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        info = body.get("action_info")
        spec = info.get("card") if isinstance(info, dict) else None
        if body.get("action_name") != "QR_CARD" or not isinstance(spec, dict):
            raise WeChatError(INVALID_ACTION_INFO, "invalid action_info (the stand-in models QR_CARD only)")
        card = self.state.card(spec.get("card_id"))
        expire = QR_DEFAULT_EXPIRE
        if body.get("expire_seconds") is not None:
            expire = _int(body["expire_seconds"], "expire_seconds")
            if not 60 <= expire <= 1800:
                raise WeChatError(INVALID_ARGS, "invalid args: expire_seconds must be 60..1800")
        code = spec.get("code") or None
        if code is None and card.use_custom_code and not card.deposit_mode:
            raise WeChatError(MISSING_REQUIRED_FIELDS, "missing required fields: code")
        if code is not None and card.deposit_mode:
            rec = self.state.codes.get((card.card_id, code))
            if rec is None or rec.status != DEPOSITED:
                raise WeChatError(INVALID_SERIAL_CODE, "invalid serial code")
        qr = QrCode(
            secrets.token_urlsafe(48),
            f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}",
            card.card_id,
            code,
            spec.get("openid") or None,
            str(spec.get("outer_str") or ""),
            bool(spec.get("is_unique_code")),
            self.state.now() + expire,
        )
        self.state.qrcodes[qr.ticket] = qr
        return {
            "ticket": qr.ticket,
            "expire_seconds": expire,
            "url": qr.url,
            "show_qrcode_url": f"https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket={qr.ticket}",
        }

    def get_code(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        rec = self.state.held_code(body.get("card_id"), body.get("code"))
        status = rec.user_card_status(self.state.now())
        if body.get("check_consume", True):
            # check_consume=true turns bad states into errcodes; false reports them with errcode 0.
            if status == CONSUMED:
                raise WeChatError(CODE_CONSUMED, "invalid code, this code has consumed.")
            if status in (DELETE, UNAVAILABLE):
                raise WeChatError(
                    INVALID_USER_CARD_STATUS,
                    "invalid user-card status! Hint: the card was "
                    "given to user, but may be deleted or set unavailable !",
                )
        return {
            "card": {"card_id": rec.card_id, "begin_time": rec.begin_time, "end_time": rec.end_time},
            "openid": rec.openid,
            "can_consume": status == NORMAL,
            "outer_str": rec.outer_str,
            "user_card_status": status,
        }

    def consume(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        rec = self.state.held_code(body.get("card_id"), body.get("code"))
        status = rec.user_card_status(self.state.now())
        if status == CONSUMED:
            raise WeChatError(CODE_CONSUMED, "invalid code, this code has consumed.")
        if status != NORMAL:
            raise WeChatError(INVALID_USER_CARD_STATUS, f"invalid user-card status {status}")
        rec.move(CONSUMED, self.state.now(), "card/code/consume")
        return {"card": {"card_id": rec.card_id}, "openid": rec.openid}

    def unavailable(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        rec = self.state.held_code(body.get("card_id"), body.get("code"))
        if rec.status == CONSUMED:
            raise WeChatError(CODE_CONSUMED, "invalid code, this code has consumed.")
        if rec.status == UNAVAILABLE:
            raise WeChatError(INVALID_USER_CARD_STATUS, "invalid user-card status UNAVAILABLE")
        rec.unavailable_reason = str(body.get("reason") or "")
        rec.move(UNAVAILABLE, self.state.now(), rec.unavailable_reason)
        return {}

    def update_user(self, _: dict[str, str], body: JsonObj) -> JsonObj:
        rec = self.state.held_code(body.get("card_id"), body.get("code"))
        if rec.status == CONSUMED:
            raise WeChatError(CODE_CONSUMED, "invalid code, this code has consumed.")
        if rec.status in (DELETE, UNAVAILABLE):
            raise WeChatError(INVALID_USER_CARD_STATUS, f"invalid user-card status {rec.status}")
        balance = _int(body["balance"], "balance") if "balance" in body else rec.balance
        record = body.get("record_balance", "")
        if not isinstance(record, str):
            raise WeChatError(DATA_FORMAT_ERROR, "data format error: record_balance must be a string")
        rec.fields.update(
            {k: v for k, v in body.items() if k not in ("card_id", "code", "balance", "record_balance")}
        )
        rec.updates.append(BalanceUpdate(self.state.now(), rec.balance, balance, record, copy.deepcopy(body)))
        rec.balance = balance
        return {"result_bonus": 0, "result_balance": balance, "openid": rec.openid}


# --- running it --------------------------------------------------------------------------------------------


class ThreadedServer:
    """An ASGI app under uvicorn in a thread; it can drop off the network and come back on its port."""

    def __init__(self, app: Any, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"already serving on {self.url}")
        sock = listening_socket(self.host, self.port)  # the same port again after a stop
        self.port = sock.getsockname()[1]
        self._closing.clear()
        self._server, self._thread = serve_in_thread(
            self.app,
            sock,
            within=5,
            name=f"uvicorn-{self.port}",
            lifespan="off",
            http="h11",
            ws="none",
            timeout_graceful_shutdown=1,
        )

    def stop(self) -> None:
        """Close the listening socket and every connection: clients then get "connection refused"."""
        if self._server is None or self._thread is None:
            return
        self._closing.set()
        self._server.should_exit = self._server.force_exit = True
        self._thread.join(timeout=5)
        self._server = self._thread = None

    async def pause(self, seconds: float) -> bool:
        """Sleep up to `seconds` inside a handler; False if the server began going down meanwhile."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self._closing.is_set():
                return False
            await asyncio.sleep(min(0.02, left))
        return not self._closing.is_set()


USER_ACTIONS = (
    "add_to_wallet",
    "gift_to_friend",
    "accept_gift",
    "delete_from_wallet",
    "consume_in_wechat",
    "scan_qrcode",
    "add_card",
)
FAULT_SHORTCUTS: dict[str, JsonObj] = {
    "system_busy": {"kind": "errcode", "errcode": SYSTEM_BUSY},
    "rate_limit": {"kind": "errcode", "errcode": RATE_LIMITED},
}


class WeChatStandin:
    """WeChat on 127.0.0.1 for tests: start(), point a client at base_url, inspect .state, .calls, .events."""

    def __init__(
        self,
        appid: str = DEFAULT_APPID,
        secret: str = DEFAULT_SECRET,
        *,
        token_lifetime: float = 7200,
        ticket_lifetime: float = 7200,
        token_overlap: float = 300,
        callback: CallbackConfig | None = None,
        original_id: str = DEFAULT_ORIGINAL_ID,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.appid, self.secret, self.original_id = appid, secret, original_id
        self.state = StandinState(
            appid,
            secret,
            token_lifetime=token_lifetime,
            ticket_lifetime=ticket_lifetime,
            token_overlap=token_overlap,
        )
        self.faults = FaultPlan()
        self.callback = callback
        self.events: list[PushResult] = []
        self._calls: list[CallRecord] = []
        self._calls_lock = threading.Lock()
        self._api = WeChatApi(self.state)
        self._server = ThreadedServer(self._build_app(), host=host, port=port)
        self._lifecycle = threading.RLock()
        self._outage: threading.Thread | None = None
        self._outage_cancel = threading.Event()

    # lifecycle ---------------------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """e.g. "http://127.0.0.1:40123/": what replaces "https://api.weixin.qq.com/"."""
        return self._server.url

    @property
    def running(self) -> bool:
        return self._server.running

    def start(self) -> WeChatStandin:
        with self._lifecycle:
            self._server.start()
        log.info("WeChat stand-in serving on %s (appid %s)", self.base_url, self.appid)
        return self

    def stop(self) -> None:
        self._outage_cancel.set()
        if self._outage is not None:
            self._outage.join()
            self._outage = None
        with self._lifecycle:
            self._server.stop()

    def __enter__(self) -> WeChatStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_down(self) -> None:
        """Stop listening and drop every connection; the port stays reserved for come_up()."""
        with self._lifecycle:
            self._server.stop()
        log.info("stand-in DOWN (connections to port %d are refused)", self._server.port)

    def come_up(self) -> None:
        with self._lifecycle:
            if not self._server.running:
                self._server.start()
        log.info("stand-in UP again on %s", self.base_url)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        self.go_down()
        try:
            yield
        finally:
            self.come_up()

    def _begin_outage(self, seconds: float) -> None:
        """Down now, up after `seconds`, from a thread of its own (a handler cannot stop its own server)."""
        self._outage_cancel.clear()
        self._outage = threading.Thread(
            target=self._run_outage, args=(seconds,), name="standin-outage", daemon=True
        )
        self._outage.start()

    def _run_outage(self, seconds: float) -> None:
        self.go_down()
        if not self._outage_cancel.wait(seconds):
            self.come_up()

    # inspection and control --------------------------------------------------------------------------------

    @property
    def calls(self) -> list[CallRecord]:
        with self._calls_lock:
            return list(self._calls)

    def calls_to(self, path: str) -> list[CallRecord]:
        return [c for c in self.calls if c.path == path]

    def card(self, card_id: str) -> Card:
        return self.state.cards[card_id]

    def code(self, card_id: str, code: str) -> CardCode:
        return self.state.codes[(card_id, code)]

    def expire_tokens(self) -> None:
        """Every access_token issued so far now answers 42001, as when WeChat expires them early."""
        with self.state.lock:
            now = self.state.now()
            for cred in self.state.tokens():
                cred.expires_at = min(cred.expires_at, now)

    def advance_clock(self, seconds: float) -> None:
        """Move the stand-in's clock (token, ticket, QR and card expiry; event CreateTime)."""
        with self.state.lock:
            self.state.clock_offset += seconds

    def reset(self, *, keep_tokens: bool = True) -> None:
        """Forget cards, codes, faults, calls and events; issued tokens survive unless keep_tokens=False."""
        self.state.clear(keep_tokens=keep_tokens)
        self.faults.clear()
        self.events.clear()
        with self._calls_lock:
            self._calls.clear()

    # the simulated user ------------------------------------------------------------------------------------

    def add_to_wallet(
        self, card_id: str, code: str | None, openid: str, *, outer_str: str = "", **extra: Any
    ) -> CardCode:
        """The user receives the card (takes one unit of stock and, in deposit mode, one pooled code)."""
        with self.state.lock:
            card = self._user_card(card_id)
            rec = self._claim(card, code)
            self._receive(card, rec, openid, outer_str, "")
        self._emit("user_get_card", openid, self._get_card_fields(rec, extra=extra))
        return rec

    def add_card(self, card_id: str, card_ext: str | Mapping[str, Any], openid: str) -> CardCode:
        """wx.addCard as WeChat's app runs it: the cardExt must verify against a live wx_card ticket."""
        ext = json.loads(card_ext) if isinstance(card_ext, str) else dict(card_ext)
        with self.state.lock:
            card = self._user_card(card_id)
            tickets = self.state.valid_tickets("wx_card")
            if not any(verify_card_ext_signature(ext, api_ticket=t, card_id=card_id) for t in tickets):
                raise UserActionError("cardExt signature does not verify against any live wx_card ticket")
            if ext.get("openid") and ext["openid"] != openid:
                raise UserActionError("cardExt is bound to another openid")
            rec = self._claim(card, ext.get("code") or None)
            self._receive(card, rec, openid, str(ext.get("outer_str") or ""), "via addCard")
        self._emit("user_get_card", openid, self._get_card_fields(rec))
        return rec

    def scan_qrcode(self, ticket_or_url: str, openid: str) -> CardCode:
        """The user scans a card/qrcode/create QR code (by its ticket or its url) and takes the card."""
        with self.state.lock:
            qr = next((q for q in self.state.qrcodes.values() if ticket_or_url in (q.ticket, q.url)), None)
            if qr is None:
                raise UserActionError("unknown QR code")
            if self.state.now() > qr.expires_at:
                raise UserActionError("QR code expired")
            if qr.openid and qr.openid != openid:
                raise UserActionError("QR code is bound to another openid")
            if qr.scans and (qr.code or qr.openid or qr.is_unique_code):  # "只能被用户扫描领取一次"
                raise UserActionError("QR code already used")
            card = self._user_card(qr.card_id)
            rec = self._claim(card, qr.code)
            self._receive(card, rec, openid, qr.outer_str, "via QR code")
            qr.scans += 1
        self._emit("user_get_card", openid, self._get_card_fields(rec))
        return rec

    def gift_to_friend(
        self,
        card_id: str,
        code: str,
        friend_openid: str,
        *,
        accept: bool = True,
        new_code: str | None = None,
        is_chat_room: bool = False,
    ) -> CardCode:
        """The holder gifts the card (user_gifting_card); accept=True: the friend takes it (user_get_card)."""
        with self.state.lock:
            rec = self._normal_user_code(card_id, code, "gifted")
            if False in (
                rec.fields.get("can_give_friend"),
                self.card(card_id).base_info.get("can_give_friend"),
            ):
                raise UserActionError("can_give_friend is false for this card")
            giver = rec.openid or ""
            rec.pending_friend = friend_openid
            rec.move(GIFTING, self.state.now(), f"from {giver} to {friend_openid}")
        self._emit(
            "user_gifting_card",
            giver,
            {
                "CardId": card_id,
                "UserCardCode": code,
                "IsReturnBack": 0,
                "FriendUserName": friend_openid,
                "IsChatRoom": int(is_chat_room),
            },
        )
        return self.accept_gift(card_id, code, new_code=new_code) if accept else rec

    def accept_gift(self, card_id: str, code: str, *, new_code: str | None = None) -> CardCode:
        """The friend takes a GIFTING card; `new_code` simulates WeChat changing the code on transfer."""
        with self.state.lock:
            rec = self._user_code(card_id, code)
            if rec.status != GIFTING or rec.pending_friend is None:
                raise UserActionError(f"code {code!r} is not being gifted")
            if new_code and (card_id, new_code) in self.state.codes:
                raise UserActionError(f"code {new_code!r} already exists")
            giver, friend = rec.openid, rec.pending_friend
            if new_code:
                del self.state.codes[(card_id, code)]
                rec.code = new_code
                self.state.codes[(card_id, new_code)] = rec
            rec.openid, rec.pending_friend = friend, None
            rec.move(NORMAL, self.state.now(), f"accepted by {friend} from {giver}")
        self._emit("user_get_card", friend, self._get_card_fields(rec, giver=giver, old_code=code))
        return rec

    def delete_from_wallet(self, card_id: str, code: str) -> CardCode:
        with self.state.lock:
            rec = self._user_code(card_id, code)
            if rec.status == DELETE:
                raise UserActionError("already deleted")
            rec.move(DELETE, self.state.now(), f"by {rec.openid}")
        self._emit("user_del_card", rec.openid or "", {"CardId": card_id, "UserCardCode": code})
        return rec

    def consume_in_wechat(
        self,
        card_id: str,
        code: str,
        *,
        source: str = "FROM_MOBILE_HELPER",
        staff_openid: str = "",
        location_name: str = "",
    ) -> CardCode:
        """A consumption done on WeChat's side (not through card/code/consume): user_consume_card."""
        with self.state.lock:
            rec = self._normal_user_code(card_id, code, "consumed")
            rec.move(CONSUMED, self.state.now(), source)
        self._emit(
            "user_consume_card",
            rec.openid or "",
            {
                "CardId": card_id,
                "UserCardCode": code,
                "ConsumeSource": source,
                "LocationName": location_name,
                "StaffOpenId": staff_openid,
                "VerifyCode": "",
                "RemarkAmount": "",
                "OuterStr": rec.outer_str,
            },
        )
        return rec

    def push_event(self, event: str, openid: str, **fields: Any) -> PushResult:
        """Push any event as-is, e.g. user_consume_card with ConsumeSource=FROM_API after an API consume."""
        return self._emit(event, openid, fields)

    def _user_card(self, card_id: str) -> Card:
        if card_id not in self.state.cards:
            raise UserActionError(f"unknown card {card_id!r}")
        return self.state.cards[card_id]

    def _user_code(self, card_id: str, code: str) -> CardCode:
        rec = self.state.codes.get((card_id, code))
        if rec is None or rec.status == DEPOSITED:
            raise UserActionError(f"code {code!r} of {card_id} is in nobody's wallet")
        return rec

    def _normal_user_code(self, card_id: str, code: str, action: str) -> CardCode:
        """A code in a wallet that can be `action` (gifted, consumed): only a NORMAL one can."""
        rec = self._user_code(card_id, code)
        status = rec.user_card_status(self.state.now())
        if status != NORMAL:
            raise UserActionError(f"only a NORMAL card can be {action}; this one is {status}")
        return rec

    def _claim(self, card: Card, code: str | None) -> CardCode:
        """The code record a user is about to receive; refuses what WeChat's app would refuse."""
        if card.quantity <= 0:
            raise UserActionError(f"card {card.card_id} is out of stock (card/modifystock after depositing)")
        if card.deposit_mode:
            if code is None:
                return self.state.pool(card.card_id)[0]  # stock <= pool size, so the pool is not empty
            rec = self.state.codes.get((card.card_id, code))
            if rec is None or rec.status != DEPOSITED:
                raise UserActionError(f"code {code!r} is not an unassigned deposited code of {card.card_id}")
            return rec
        if code is None and card.use_custom_code:
            raise UserActionError("a custom-code card needs its code")
        code = code or "".join(secrets.choice(string.digits) for _ in range(12))
        if (card.card_id, code) in self.state.codes:
            raise UserActionError(f"code {code!r} already exists")
        rec = self.state.codes[(card.card_id, code)] = CardCode(card.card_id, code)
        return rec

    def _receive(self, card: Card, rec: CardCode, openid: str, outer_str: str, how: str) -> None:
        now = self.state.now()
        card.quantity -= 1
        rec.openid, rec.outer_str = openid, outer_str
        rec.begin_time, rec.end_time = card.validity(now)
        rec.move(NORMAL, now, f"received by {openid} {how}")

    @staticmethod
    def _get_card_fields(
        rec: CardCode, *, giver: str | None = None, old_code: str = "", extra: Mapping[str, Any] | None = None
    ) -> JsonObj:
        return {
            "CardId": rec.card_id,
            "IsGiveByFriend": int(giver is not None),
            "UserCardCode": rec.code,
            "FriendUserName": giver or "",
            "OuterId": 0,
            "OldUserCardCode": old_code,
            "OuterStr": rec.outer_str,
            "IsRestoreMemberCard": 0,
            "IsRecommendByFriend": 0,
            **(extra or {}),
        }

    def _emit(self, event: str, openid: str, fields: Mapping[str, Any]) -> PushResult:
        """Record the event and, when a callback is configured, push it (blocking, with WeChat's retries)."""
        now = int(self.state.now())
        xml = event_xml(
            to_user=self.original_id, from_user=openid, create_time=now, event=event, fields=fields
        )
        result = PushResult(event, openid, dict(fields), xml)
        if self.callback is not None:
            log.info("push %s for %s to %s (%s mode)", event, openid, self.callback.url, self.callback.mode)
            result.attempts = deliver(
                self.callback,
                appid=self.appid,
                original_id=self.original_id,
                openid=openid,
                xml=xml,
                timestamp=now,
            )
        self.events.append(result)
        return result

    # HTTP --------------------------------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/_standin/faults", self._http_faults, methods=["GET", "POST", "DELETE"]),
                Route("/_standin/calls", self._http_calls, methods=["GET"]),
                Route("/_standin/state", self._http_state, methods=["GET"]),
                Route("/_standin/reset", self._http_reset, methods=["POST"]),
                Route("/_standin/user/{action}", self._http_user, methods=["POST"]),
                Route("/{path:path}", self._http_api, methods=["GET", "POST"]),
            ]
        )

    async def _http_api(self, request: Request) -> Response:
        started = time.monotonic()
        path = request.path_params["path"].strip("/")
        raw = await request.body()
        fault = self.faults.take(path)
        slow = fault if fault is not None and fault.kind == "slow" else None
        status: int
        payload: JsonObj | str
        if slow is not None and not slow.apply_first and not await self._server.pause(slow.seconds):
            status, payload = 503, "went down before answering: the call never landed"
        elif fault is not None and slow is None:
            status, payload = fault.answer()
        else:
            status, payload = 200, self._api.handle(request.method, path, dict(request.query_params), raw)
        self._record(request, path, raw, status, payload, fault, time.monotonic() - started)
        if slow is not None and slow.apply_first:
            await self._server.pause(slow.seconds)
        if isinstance(payload, dict):
            return JSONResponse(payload, status_code=status)
        return Response(payload, status_code=status, media_type="text/html")

    def _record(
        self,
        request: Request,
        path: str,
        raw: bytes,
        status: int,
        payload: JsonObj | str,
        fault: Fault | None,
        duration: float,
    ) -> None:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with self._calls_lock:
            call = CallRecord(
                len(self._calls) + 1,
                self.state.now(),
                request.method,
                path,
                dict(request.query_params),
                body,
                status,
                payload,
                fault.kind if fault else None,
                duration,
            )
            self._calls.append(call)
        summary = json.dumps(body, ensure_ascii=False)[:160] if body is not None else ""
        log.info(
            "%s %s %s -> HTTP %d errcode %s%s",
            request.method,
            path,
            summary,
            status,
            call.errcode,
            f" [fault: {call.fault}]" if call.fault else "",
        )

    async def _http_faults(self, request: Request) -> Response:
        background = None
        if request.method == "DELETE":
            self.faults.clear()
        elif request.method == "POST":
            try:
                spec = dict(await request.json())
            except ValueError:
                return JSONResponse({"error": "send a JSON object"}, status_code=400)
            kind = spec.pop("kind", None)
            if kind == "expire_tokens":
                self.expire_tokens()
            elif kind == "down":
                background = BackgroundTask(self._begin_outage_soon, float(spec.get("seconds", 5)))
            else:
                try:
                    self.faults.add(Fault(**{**FAULT_SHORTCUTS.get(kind, {"kind": kind}), **spec}))
                except (TypeError, ValueError) as exc:
                    return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"faults": [asdict(f) for f in self.faults.active]}, background=background)

    async def _begin_outage_soon(self, seconds: float) -> None:
        self._begin_outage(seconds)  # runs after the response went out

    async def _http_calls(self, _: Request) -> Response:
        return JSONResponse([asdict(c) for c in self.calls])

    async def _http_state(self, _: Request) -> Response:
        return JSONResponse(self.state.snapshot())

    async def _http_reset(self, _: Request) -> Response:
        self.reset()
        return JSONResponse({"ok": True})

    async def _http_user(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in USER_ACTIONS:
            return JSONResponse(
                {"error": f"unknown action; one of {', '.join(USER_ACTIONS)}"}, status_code=404
            )
        kwargs = await request.json()
        call = lambda: getattr(self, action)(**kwargs)  # noqa: E731
        try:
            # Off the event loop: the push may call back into this very server.
            rec = await asyncio.get_running_loop().run_in_executor(None, call)
        except (UserActionError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(asdict(rec))

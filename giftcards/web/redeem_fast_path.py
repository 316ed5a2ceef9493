"""The till's redemption without detours: body, signature and credential checked here, the rest in one
database round trip, shared with the redemptions arriving meanwhile (giftcards/value/redemption.py). Any
doubt hands the request to the general path, which answers it exactly as it would have; this path only
ever answers the plain case faster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from giftcards.core import idempotency
from giftcards.core.errors import DomainError
from giftcards.core.ids import ascii_int
from giftcards.qr.signing import InvalidPayload
from giftcards.runtime import Runtime
from giftcards.stores import staff_log
from giftcards.stores.merchants import API_KEY_PREFIX, token_merchant
from giftcards.stores.terminals import TOKEN_PREFIX as TERMINAL_PREFIX
from giftcards.value import cards
from giftcards.value import redemption as quick_redeem
from giftcards.web.calls import client_address, outcome_response
from giftcards.web.routing import parse_json
from giftcards.web.validation import Schema

_MAX_BODY = 4096  # a redemption is a few hundred bytes; anything else goes the general way

FastPath = Callable[[Request], Awaitable[Response | None]]


def make_fast_path(body_schema: Schema) -> FastPath:
    async def fast_path(request: Request) -> Response | None:
        rt: Runtime = request.app.state.runtime
        redemption = _prepare(request, rt, body_schema, await _small_body(request))
        if redemption is None:
            return None
        outcome = await rt.redemptions.redeem(redemption)
        return outcome_response(outcome) if outcome is not None else None

    return fast_path


async def _small_body(request: Request) -> bytes | None:
    declared = ascii_int(request.headers.get("content-length", ""), 20)
    if declared is None or declared > _MAX_BODY:
        return None
    # Bounded in time by the body gate (web/body.py): a trickled body is answered 408, holding nothing.
    return await request.body()  # kept by Starlette, so the general path can read it again


def _prepare(
    request: Request, rt: Runtime, body_schema: Schema, raw: bytes | None
) -> quick_redeem.QuickRedemption | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    kind = {API_KEY_PREFIX: "api_key", TERMINAL_PREFIX: "terminal"}.get(token.split("_", 1)[0])
    key = request.headers.get("idempotency-key")
    if raw is None or scheme.lower() != "bearer" or kind is None:
        return None
    merchant_id = token_merchant(token, token.split("_", 1)[0])
    if merchant_id is None or (key is not None and not idempotency.KEY_PATTERN.match(key)):
        return None
    try:
        body = parse_json(raw, request.headers.get("content-type", ""), body_schema)
    except DomainError:
        return None
    target = _card(rt, merchant_id, body)
    if target is None:
        return None
    return quick_redeem.QuickRedemption(
        token_kind=kind,
        merchant_id=merchant_id,
        token_hash=rt.keyring.token_hash(token),
        client=client_address(request),
        key=key,
        fingerprint=idempotency.request_fingerprint(request.method, request.scope["path"], body),
        amount=body["amount"],
        currency=body.get("currency"),
        allow_partial=body.get("allow_partial", False),
        reference=body.get("reference"),
        **target,
    )


def _card(rt: Runtime, merchant_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
    """The card named by a genuine, fresh QR payload of this merchant, or by a well-formed typed code."""
    if "qr_payload" in body:
        try:
            claims = rt.qr_keys.keyset.verify(body["qr_payload"])
        except InvalidPayload:
            return None  # perhaps a key this process has not loaded yet: the general path reloads
        if not cards.claims_fit(claims, merchant_id):
            return None
        return {
            "kid": claims.kid,
            "card_id": claims.card_id,
            "payload_generation": claims.generation,  # the database refuses one the card has moved past
            "code_hash": None,
            "code_last4": None,
        }
    code_hash = cards.typed_code_hash(rt.keyring, body["code"])
    if code_hash is None:
        return None
    return {
        "kid": None,
        "card_id": None,
        "payload_generation": None,
        "code_hash": code_hash,
        "code_last4": staff_log.typed_last4(body["code"]),
    }

"""Cards, batches, redemptions, refunds and activities: /v1 in the style of Stripe and Square."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.responses import Response, StreamingResponse

from giftcards.core import idempotency
from giftcards.core.errors import DomainError, ValidationError
from giftcards.core.shapes import Page, PageQuery, decode
from giftcards.qr import images as qr
from giftcards.value import cards, ledger
from giftcards.value import redemption as redemptions
from giftcards.value.cards import CardRef, CardSpec
from giftcards.value.shapes import (
    Activity,
    Adjust,
    Card,
    CardBatch,
    CardCode,
    CardQuery,
    CardReference,
    IssueBatch,
    IssueCard,
    Load,
    Redeem,
    Refund,
    StateChange,
    StaticQr,
)
from giftcards.web.api.terminals import staff_guard
from giftcards.web.calls import (
    MERCHANT,
    STAFF,
    TEXT,
    Call,
    Operations,
    Result,
    client_address,
    credential,
    endpoint,
    outcome_response,
)
from giftcards.web.routing import Api, read_object

# The redemption handler reads its own body (admits_itself): it is decoded as Redeem for its refusals only;
# the document as sent is what value/redemption.prepare and the request fingerprint take.


def _spec(body: IssueCard) -> CardSpec:
    return CardSpec(
        amount=body.amount,
        currency=body.currency,
        expires_at=body.expires_at,
        campaign=body.campaign,
        design_id=body.design_id,
        pending=body.state == "pending",
    )


def register(api: Api) -> None:
    route = Operations(api, tag="cards", auth=MERCHANT)

    @route.post("/v1/cards", created=Card, body=IssueCard, no_store=True)
    async def issue_card(call: Call) -> Result:
        """Issue a card"""
        return 201, await cards.issue(call.conn, call.keyring, call.principal, _spec(call.body))

    @route.post("/v1/card_batches", created=CardBatch, body=IssueBatch)
    async def issue_batch(call: Call) -> Result:
        """Issue many cards at once (up to 100,000)"""
        return 201, await cards.issue_batch(
            call.conn, call.keyring, call.principal, _spec(call.body), call.body.count
        )

    @route.get("/v1/card_batches/{batch_id}", answer=CardBatch)
    async def get_batch(call: Call) -> Result:
        """A card batch"""
        return 200, await cards.get_batch(call.conn, call.merchant_id, call.path["batch_id"])

    @route.get(
        "/v1/card_batches/{batch_id}/cards", answer=TEXT, media_type="application/x-ndjson", no_store=True
    )
    async def export_batch(call: Call) -> Result:
        """The cards of a batch with their codes, streamed as NDJSON (one card a line)"""
        await cards.get_batch(call.conn, call.merchant_id, call.path["batch_id"])
        rows = cards.batch_codes(call.conn, call.keyring, call.merchant_id, call.path["batch_id"])
        # The stream is consumed while the request's connection is still held (see calls._serve).
        lines = [msgspec.json.encode(row) + b"\n" async for row in rows]
        return StreamingResponse(_iterate(lines), media_type="application/x-ndjson")

    @route.get("/v1/cards", answer=Page[Card], query=CardQuery, no_store=True)
    async def list_cards(call: Call) -> Result:
        """List cards, newest first"""
        return 200, await cards.list_cards(call.conn, call.merchant_id, **call.filters)

    @route.get("/v1/cards/{card_id}", answer=Card, no_store=True)
    async def get_card(call: Call) -> Result:
        """A card"""
        return 200, await cards.get(call.conn, call.merchant_id, call.path["card_id"])

    @route.get("/v1/cards/{card_id}/code", answer=CardCode, no_store=True)
    async def reveal_code(call: Call) -> Result:
        """Show a card's code again"""
        code = await cards.reveal_code(call.conn, call.keyring, call.merchant_id, call.path["card_id"])
        return 200, CardCode(card=call.path["card_id"], code=code)

    @route.get("/v1/cards/{card_id}/qr", answer=StaticQr, no_store=True)
    async def card_qr(call: Call) -> Result:
        """A card's static signed QR payload"""
        card_id = call.path["card_id"]
        payload = await cards.static_qr(call.conn, call.rt.qr_keys, call.merchant_id, card_id)
        return 200, StaticQr(card=card_id, payload=payload, length=len(payload))

    @route.get("/v1/cards/{card_id}/qr.svg", answer=TEXT, media_type="image/svg+xml", no_store=True)
    async def card_qr_svg(call: Call) -> Result:
        """A card's static QR code as SVG"""
        payload = await cards.static_qr(call.conn, call.rt.qr_keys, call.merchant_id, call.path["card_id"])
        return Response(qr.render_svg(payload), media_type="image/svg+xml")

    @route.get("/v1/cards/{card_id}/activities", tag="activities", answer=Page[Activity], query=PageQuery)
    async def list_activities(call: Call) -> Result:
        """A card's ledger, newest first"""
        return 200, await cards.list_activities(
            call.conn,
            call.merchant_id,
            call.path["card_id"],
            limit=call.query.limit,
            starting_after=call.query.starting_after,
        )

    @route.get("/v1/activities/{activity_id}", tag="activities", answer=Activity)
    async def get_activity(call: Call) -> Result:
        """One activity"""
        entry_id = ledger.parse_activity_id(call.path["activity_id"])
        return 200, ledger.activity_view(await ledger.fetch_entry(call.conn, call.merchant_id, entry_id))

    @route.post(
        "/v1/cards/lookup", auth=STAFF, tag="redemptions", answer=Card, body=CardReference, no_store=True
    )
    async def lookup(call: Call) -> Result:
        """Find a card by its code or QR payload"""
        ref = CardRef(code=call.body.code or None, qr_payload=call.body.qr_payload or None)
        return 200, await staff_guard(  # a terminal's role, rate limit and staff log
            call,
            "lookup",
            lambda: cards.lookup(call.conn, call.keyring, call.rt.qr_keys, call.merchant_id, ref),
            typed_code=ref.code,
            looks_up=True,
        )

    @route.post(
        "/v1/redemptions", auth=STAFF, tag="redemptions", created=Activity, body=Redeem, admits_itself=True
    )
    async def redeem(call: Call) -> Result:
        """Take an amount from a card (by code or QR payload)"""
        request, rt = call.request, call.rt
        token_kind, token = credential(request, ("api_key", "terminal"))
        raw = await request.body()
        body: dict[str, Any] | None = None
        invalid: DomainError | None = None
        try:
            body = read_object(raw, request.headers.get("content-type", ""))
            decode(body, Redeem)
        except DomainError as exc:  # answered once the database has found the credential good
            body, invalid = None, exc
        redemption = await redemptions.prepare(
            rt.keyring,
            rt.qr_keys,
            call.connect,
            token_kind=token_kind,
            token=token,
            client=client_address(request),
            key=call.idempotency_key,
            fingerprint=idempotency.request_fingerprint(request.method, request.scope["path"], body),
            body=body,
            invalid=invalid,
        )
        return outcome_response(await rt.redemptions.redeem(redemption))

    @route.post("/v1/refunds", auth=STAFF, tag="redemptions", created=Activity, body=Refund)
    async def refund(call: Call) -> Result:
        """Give back (part of) a redemption"""
        b: Refund = call.body
        return 201, await staff_guard(
            call,
            "refund",
            lambda: cards.refund(
                call.conn,
                call.principal,
                redemption_id=b.redemption,
                amount=b.amount,
                reference=b.reference,
                idempotency_key=call.idempotency_key,
            ),
            amount=b.amount,
            redemption=b.redemption,
        )

    for kind, body, summary in (
        ("load", Load, "Add value to a card"),
        ("adjust", Adjust, "Correct a balance, with a reason"),
        ("activate", StateChange, "Activate a pending card"),
        ("block", StateChange, "Block a card (reversible)"),
        ("unblock", StateChange, "Unblock a card"),
        ("deactivate", StateChange, "Deactivate a card for good (its balance is written off)"),
    ):
        _register_change(api, kind, body, summary)


def _register_change(api: Api, kind: str, body: type[Load | Adjust | StateChange], summary: str) -> None:
    async def change(call: Call) -> Result:
        b = call.body
        amount = getattr(b, "amount", None)
        if kind == "adjust" and amount == 0:
            raise ValidationError([{"field": "amount", "message": "must not be zero"}])
        return 201, await cards.change(
            call.conn,
            call.principal,
            call.path["card_id"],
            kind,
            amount=amount,
            currency=getattr(b, "currency", None),
            reason=getattr(b, "reason", None),
            reference=b.reference,
            idempotency_key=call.idempotency_key,
        )

    change.__name__ = f"{kind}_card"
    endpoint(
        api,
        "POST",
        f"/v1/cards/{{card_id}}/{kind}",
        summary=summary,
        tag="cards",
        auth=("api_key",),
        idempotent=True,
        body=body,
        responses={201: Activity},
    )(change)


async def _iterate(lines: list[bytes]) -> AsyncIterator[bytes]:
    for line in lines:
        yield line

"""Domain errors with stable codes. The HTTP layer turns them into RFC 9457 problem documents.

A code is part of the API contract: clients branch on it, so it never changes once published.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

PROBLEM_TITLES: dict[str, tuple[int, str]] = {
    # request shape
    "invalid_request": (400, "The request is not valid"),
    "malformed_json": (400, "The body is not valid JSON"),
    "unsupported_media_type": (415, "The body must be application/json"),
    "payload_too_large": (413, "The body is larger than allowed"),
    "request_timeout": (408, "The body did not arrive in time"),
    "not_found": (404, "No such resource"),
    "method_not_allowed": (405, "Method not allowed"),
    # authentication
    "unauthenticated": (401, "Missing or invalid credentials"),
    "forbidden": (403, "Not allowed"),
    "rate_limited": (429, "Too many failed attempts; retry later"),
    # idempotency
    "idempotency_conflict": (422, "The idempotency key was used with a different request"),
    "invalid_idempotency_key": (400, "The idempotency key is not valid"),
    # cards and money
    "invalid_code": (404, "No card matches this code"),
    "invalid_qr_payload": (404, "No card matches this code"),
    "card_not_found": (404, "No such card"),
    "activity_not_found": (404, "No such activity"),
    "insufficient_funds": (402, "The card balance is too low"),
    "card_expired": (409, "The card has expired"),
    "card_blocked": (409, "The card is blocked"),
    "card_deactivated": (409, "The card is deactivated"),
    "card_not_active": (409, "The card is not active yet"),
    "invalid_state_transition": (409, "The card cannot make this change in its current state"),
    "currency_mismatch": (422, "The currency does not match the card"),
    "refund_exceeds_redemption": (409, "The refund is larger than what remains of the redemption"),
    "not_a_redemption": (409, "Only a redemption can be refunded"),
    "balance_limit_exceeded": (409, "The card balance would exceed the maximum"),
    # stores and terminals
    "invalid_enrollment_code": (404, "The enrollment code is wrong, used or expired"),
    "terminal_revoked": (409, "The terminal is revoked"),
    "store_limit_exceeded": (403, "The amount is above this store's limit for a clerk terminal"),
    "manager_required": (403, "Only a manager terminal may do this"),
    "refund_not_allowed": (403, "This terminal may not refund this redemption"),
    # designs, images and gifts
    "design_not_found": (404, "No such design"),
    "design_not_on_sale": (409, "This design is not on sale now"),
    "sold_out": (409, "This design is sold out"),
    "amount_not_offered": (422, "This design is not sold in this amount"),
    "image_not_found": (404, "No such image"),
    "image_invalid": (422, "The file is not an acceptable image"),
    "image_too_large": (413, "The image file is larger than allowed"),
    "gift_not_found": (404, "No such gift"),
    "gift_not_yet_open": (409, "The gift cannot be opened yet"),
    "gift_already_claimed": (409, "The gift has already been claimed"),
    "gift_revoked": (409, "The gift was withdrawn by the sender"),
    "gift_expired": (409, "The gift was not claimed in time and went back to the sender"),
    "duplicate_purchase": (409, "A gift was already bought with this reference"),
    "not_card_owner": (403, "Only the card's owner may do this"),
    "card_in_transit": (409, "The card is on its way as a gift"),
    "card_spent": (409, "Only an unspent card can be passed on"),
    "session_used": (409, "This customise link has already been used"),
    "session_expired": (409, "This customise link has expired"),
    "session_revoked": (409, "The shop has withdrawn this customise link"),
    "amount_above_authorised": (422, "The amount is above what the shop authorised"),
    # WeChat card wallet
    "wechat_not_configured": (409, "WeChat is not set up for this merchant"),
    "wechat_card_not_synced": (409, "The card's design has no WeChat card yet"),
    "wechat_currency_unsupported": (409, "WeChat's card wallet shows CNY balances only"),
    "wechat_already_in_wallet": (409, "The card is already in a WeChat wallet"),
    "wechat_message_not_parked": (409, "Only a parked outbox message can be replayed"),
    "wechat_unavailable": (503, "WeChat did not answer; retry shortly"),
    "wechat_refused": (502, "WeChat refused the call"),
    "wechat_signature_invalid": (403, "The WeChat signature does not verify"),
    "wechat_callback_stale": (403, "The WeChat callback is too old"),
    # operations
    "database_unavailable": (503, "The database is unavailable; retry shortly"),
    "internal_error": (500, "Internal error"),
}


class DomainError(Exception):
    """A refusal the client can understand and act on; `extra` adds machine-readable members."""

    def __init__(
        self, code: str, detail: str | None = None, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        if code not in PROBLEM_TITLES:
            raise ValueError(f"unknown problem code {code!r}")
        self.code = code
        self.detail = detail
        self.headers = headers
        self.extra = extra
        super().__init__(f"{code}: {detail}" if detail else code)

    @property
    def status(self) -> int:
        return PROBLEM_TITLES[self.code][0]


class ValidationError(DomainError):
    """Bad input, with one entry per offending field so a form can show each next to its field."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        super().__init__("invalid_request", summary, errors=errors)


def found(row: T | None, what: str, code: str = "not_found") -> T:
    """`row`, or the 404 (`code`) of a `what` that is not there; lookups are per merchant, so another
    merchant's row is not there either."""
    if row is None:
        raise DomainError(code, f"no such {what}")
    return row


def problem_document(code: str, detail: str | None = None, **extra: Any) -> dict[str, Any]:
    status, title = PROBLEM_TITLES[code]
    body: dict[str, Any] = {"type": f"/problems/{code}", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return body

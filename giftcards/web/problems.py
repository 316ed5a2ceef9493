"""The one place where failures become RFC 9457 problem documents. Driver errors never reach a client."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from giftcards.core.errors import DomainError, problem_document
from giftcards.db.pool import is_unavailable

log = logging.getLogger("giftcards.errors")

PROBLEM_JSON = "application/problem+json"

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 400: "invalid_request"}


def problem_response(
    code: str, detail: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    body = problem_document(code, detail, **extra)
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status_code=body["status"],
        media_type=PROBLEM_JSON,
        headers=headers,
    )


async def domain_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return problem_response(exc.code, exc.detail, headers=exc.headers, **exc.extra)


async def http_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "invalid_request")
    detail = None if exc.status_code in (404, 405) else str(exc.detail)
    return problem_response(code, detail, headers=dict(exc.headers or {}))  # e.g. Allow on a 405


def unexpected_error_response(exc: Exception) -> Response:
    """503 for a lost database, else 500; logged here, once (web/middleware.py calls it and stops the
    exception there, so neither Starlette nor uvicorn logs it again)."""
    if is_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return problem_response("database_unavailable", headers={"Retry-After": "1"})
    log.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return problem_response("internal_error")


EXCEPTION_HANDLERS = {DomainError: domain_error, HTTPException: http_error}

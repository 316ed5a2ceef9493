"""The access log's redaction of secret links follows the route declarations: no list to keep."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from giftcards.app import build_api
from giftcards.web.middleware import loggable_path
from giftcards.web.routing import Api


async def _nothing(request: Request) -> Response:
    return Response()


def test_a_path_is_logged_only_up_to_its_secret_parameter() -> None:
    api = Api()
    api.operation("GET", "/x/{token}/card.png", summary="", tag="t")(_nothing)
    api.operation("POST", "/v1/things/{secret}", summary="", tag="t")(_nothing)
    api.operation("GET", "/v1/cards/{card_id}", summary="", tag="t")(_nothing)
    prefixes = api.secret_path_prefixes()
    assert prefixes == ("/v1/things/", "/x/")
    assert loggable_path("/x/Zk3secret/card.png", prefixes) == "/x/…"
    assert loggable_path("/v1/things/Zk3secret", prefixes) == "/v1/things/…"
    assert loggable_path("/v1/cards/card_123", prefixes) == "/v1/cards/card_123"


def test_every_served_link_kind_is_redacted() -> None:
    prefixes = build_api().secret_path_prefixes()
    assert prefixes == (
        "/c/",
        "/customise/",
        "/g/",
        "/v1/card_pages/",
        "/v1/customise/",
        "/v1/gift_links/",
        "/w/",
    )

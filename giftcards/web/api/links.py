"""The answers that hold one thing to follow or show: a link, a card page's link, a QR payload, a code.
The handlers' domains build them as dicts; these Structs are what the OpenAPI document says of them."""

from __future__ import annotations

from msgspec import Struct


class Link(Struct):
    url: str


class CardPageLink(Struct):
    """A claimed gift's card: the card page that is now its owner's alone."""

    card_url: str


class QrPayload(Struct):
    payload: str


class ShownCode(Struct):
    code: str

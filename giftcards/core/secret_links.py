"""Secret links: a URL whose last part is a random secret, of which only a keyed hash is stored.

Each kind has its URL path and its hash purpose, hashed with the secret ("purpose:secret"), so a secret of
one kind never opens another. The purposes and the hash are those the stored rows were written with:
changing either would lock every holder of an existing link out.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from giftcards.core.sealing import Keyring

SECRET_BYTES = 24  # 192 random bits: 32 URL-safe characters
_RANDOM_PART = "[A-Za-z0-9_-]{32}"


@dataclass(frozen=True)
class SecretLink:
    purpose: str  # what the secret opens, hashed with it
    path: str  # the URL's path before the secret
    prefix: str = ""  # written before the random part, so a secret says what it is (and may be a Bearer)

    def new(self, keyring: Keyring) -> tuple[str, bytes]:
        """A fresh secret, to hand out once, and its hash, to store."""
        secret = self.prefix + secrets.token_urlsafe(SECRET_BYTES)
        return secret, self.hash(keyring, secret)

    def hash(self, keyring: Keyring, secret: str) -> bytes:
        return keyring.token_hash(f"{self.purpose}:{secret}")

    def url(self, public_url: str, secret: str) -> str:
        return f"{public_url}{self.path}{secret}"

    def well_formed(self, secret: str) -> bool:
        """Whether `secret` could be one of ours: anything else is unknown without asking the database."""
        return re.fullmatch(re.escape(self.prefix) + _RANDOM_PART, secret) is not None


CARD_PAGE = SecretLink("card-page", "/c/")  # the owner's card page (gifting.card_access)
CUSTOMISE = SecretLink("customise", "/customise/")  # a gifter's customise session (gifting.customise)
GIFT = SecretLink("gift-link", "/g/")  # a gift's claim link (gifting.gifts, gifting.gift_links)
WALLET = SecretLink("wallet", "/w/", prefix="gw_")  # a wallet session, also its Bearer (wallet.holders)

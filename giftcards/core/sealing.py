"""Keys derived from the one master key, and what they protect.

Each purpose gets its own subkey (HKDF), so a key used to hash card codes can never decrypt anything,
and rotating one purpose does not touch the others.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from giftcards.core.public_ids import PublicIds

_NONCE_BYTES = 12


class SecretBox:
    """Authenticated encryption (AES-256-GCM) for values we must show again later."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, *, context: bytes = b"") -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, sealed: bytes, *, context: bytes = b"") -> bytes:
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context)


class Keyring:
    """All subkeys of the service, derived once at start."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ValueError("master key must be 32 bytes")
        self.code_lookup_key = _derive(master_key, b"giftcards/code-lookup")
        self.token_lookup_key = _derive(master_key, b"giftcards/token-lookup")
        self.box = SecretBox(_derive(master_key, b"giftcards/at-rest"))
        self.public_ids = PublicIds(_derive(master_key, b"giftcards/public-ids"))

    def code_hash(self, normalized_code: str) -> bytes:
        """Keyed hash to find a card by its code: a database dump alone cannot reverse or test it."""
        return hmac.new(self.code_lookup_key, normalized_code.encode(), hashlib.sha256).digest()

    def token_hash(self, token: str) -> bytes:
        """API keys and terminal tokens are high-entropy, so a keyed hash is enough to store them."""
        return hmac.new(self.token_lookup_key, token.encode(), hashlib.sha256).digest()


def _derive(master_key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master_key)

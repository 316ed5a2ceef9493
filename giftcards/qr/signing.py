"""Signed QR payloads that a store terminal can trust without asking us who signed them.

Two wire formats, told apart by their length, both in QR's alphanumeric set so the QR code stays small
(both fit version 6 at error correction M, which holds 154 such characters)::

    version 1, 151 characters: "GC1" + BASE32(blob)   RFC 4648, upper case, no padding: 92 bytes -> 148
    version 2, 154 characters: "GC2" + BASE32(blob)   94 bytes -> 151

    blob = kid         4 bytes   which key signed (its kid is these bytes in lowercase hex)
         | merchant   10 bytes   ids.id_to_bytes(merchant_id, "mer")
         | card       10 bytes   ids.id_to_bytes(card_id, "card")
         | step        4 bytes   uint32 big-endian: 0 = static payload, else unix_time // step_seconds
         | generation  2 bytes   version 2 only: uint16 big-endian, 1 to 65535
         | signature  64 bytes   Ed25519 over b"giftcards-qr-v1" (v2: b"giftcards-qr-v2") + the bytes above

The generation is the card's payload generation (`cards.payload_generation`), which moves on whenever the
card is passed on or gets a new code; the database refuses a payload of any other generation. A version 1
payload is of generation 0: every payload made before generations existed keeps its meaning, and a card
never passed on still gets exactly the payload it always got. Version 2 carries the others only, so each
set of claims has one spelling.

The context string keeps a signature made for a QR payload from being valid for anything else signed with
the same key, and a version 1 signature from being read as a version 2 one. Decoding is strict: the unused
bits of the last base32 character must be zero, so each blob has exactly one spelling and a verified
payload string can be cached as it is. Deciding whether a rotating payload's step is fresh, and whether
its generation is the card's, is the caller's job.
"""

from __future__ import annotations

import base64
import hmac
import math
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from giftcards.core import base32
from giftcards.core.ids import id_from_bytes, id_to_bytes


@dataclass(frozen=True)
class _Format:
    magic: str
    context: bytes
    signed: struct.Struct  # what the signature covers, after the context
    blob_bytes: int = field(init=False)
    length: int = field(init=False)

    def __post_init__(self) -> None:
        blob_bytes = self.signed.size + 64
        object.__setattr__(self, "blob_bytes", blob_bytes)
        object.__setattr__(self, "length", len(self.magic) + math.ceil(blob_bytes * 8 / 5))


_V1 = _Format("GC1", b"giftcards-qr-v1", struct.Struct(">4s10s10sI"))
_V2 = _Format("GC2", b"giftcards-qr-v2", struct.Struct(">4s10s10sIH"))
_BY_LENGTH = {version.length: version for version in (_V1, _V2)}
_KID = re.compile(r"[0-9a-f]{8}")
_MAX_STEP = 2**32 - 1
_CACHE_SIZE = 65_536  # about 25 MB at most: every card a busy store scans in a day
_GENERIC = "invalid QR payload"

PAYLOAD_LENGTH = _V1.length
PAYLOAD_V2_LENGTH = _V2.length
MAX_GENERATION = 2**16 - 1


class InvalidPayload(ValueError):
    """Any refusal of a payload. One generic message, so a caller cannot learn which check failed."""


@dataclass(frozen=True)
class QrClaims:
    kid: str
    merchant_id: str
    card_id: str
    step: int
    generation: int = 0


class SigningKey:
    """An Ed25519 key and its kid. Built from a public key alone it only verifies (e.g. a previous signer)."""

    def __init__(self, kid: str, key: Ed25519PrivateKey | Ed25519PublicKey) -> None:
        if not _KID.fullmatch(kid):
            raise ValueError("a kid is 8 lowercase hex characters")
        self.kid = kid
        self.private_key: Ed25519PrivateKey | None
        if isinstance(key, Ed25519PrivateKey):
            self.private_key = key
            self.public_key = key.public_key()
        else:
            self.private_key = None
            self.public_key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_hex(4), Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, kid: str, raw: bytes) -> SigningKey:
        return cls(kid, Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def from_public_bytes(cls, kid: str, raw: bytes) -> SigningKey:
        return cls(kid, Ed25519PublicKey.from_public_bytes(raw))

    def private_bytes(self) -> bytes:
        """The raw 32-byte seed, for storing the key sealed at rest."""
        if self.private_key is None:
            raise ValueError("this key can only verify")
        return self.private_key.private_bytes_raw()

    def public_bytes(self) -> bytes:
        return self.public_key.public_bytes_raw()


def _genuine(key: SigningKey, context: bytes, signed: bytes, signature: bytes) -> bool:
    """Ed25519 signing is deterministic (RFC 8032) and we are the only signer of our keys, so a genuine
    payload carries exactly the signature we make again: signing and comparing (about 30 us) replaces
    verifying (about 110 us) wherever the private key is at hand. Terminals verify with the public key."""
    if key.private_key is not None:
        return hmac.compare_digest(key.private_key.sign(context + signed), signature)
    try:
        key.public_key.verify(signature, context + signed)
    except InvalidSignature:
        return False
    return True


class KeySet:
    """The keys that verify payloads, one of which signs new ones.

    A set never changes: rotate by building a new one. Its verify cache starts empty and only ever holds
    payloads that verified against one of its own keys, so a retired key's payloads cannot linger there.
    """

    def __init__(self, keys: Iterable[SigningKey], signer_kid: str) -> None:
        self._keys: dict[bytes, SigningKey] = {}
        for key in keys:
            raw_kid = bytes.fromhex(key.kid)
            if raw_kid in self._keys:
                raise ValueError(f"two keys share the kid {key.kid}")
            self._keys[raw_kid] = key
        signer = next((key for key in self._keys.values() if key.kid == signer_kid), None)
        if signer is None or signer.private_key is None:
            raise ValueError("the signer must be in the set and hold a private key")
        self.signer_kid = signer_kid
        self._signer = signer.private_key
        self._verified: OrderedDict[str, QrClaims] = OrderedDict()  # an LRU of genuine payloads

    def sign(self, merchant_id: str, card_id: str, step: int = 0, generation: int = 0) -> str:
        if not 0 <= step <= _MAX_STEP:
            raise ValueError("step must fit in an unsigned 32-bit integer")
        if not 0 <= generation <= MAX_GENERATION:
            raise ValueError("generation must fit in an unsigned 16-bit integer")
        fields = (
            bytes.fromhex(self.signer_kid),
            id_to_bytes(merchant_id, "mer"),
            id_to_bytes(card_id, "card"),
        )
        if generation == 0:
            version, signed = _V1, _V1.signed.pack(*fields, step)
        else:
            version, signed = _V2, _V2.signed.pack(*fields, step, generation)
        payload = version.magic + base32.encode(signed + self._signer.sign(version.context + signed))
        # We made it, so it is genuine: the till that scans it next needs no signature check here.
        self._remember(payload, QrClaims(self.signer_kid, merchant_id, card_id, step, generation))
        return payload

    def verify(self, payload: str) -> QrClaims:
        """The claims of a payload signed by a key of this set, else `InvalidPayload`.

        A payload seen (or signed) before costs a dictionary lookup; only genuine payloads are kept.
        """
        version = _BY_LENGTH.get(len(payload))  # before hashing, so an oversized input costs nothing
        if version is None:
            raise InvalidPayload(_GENERIC)
        claims = self._verified.get(payload)
        if claims is not None:
            self._verified.move_to_end(payload)
            return claims
        claims = self._verify_uncached(payload, version)
        self._remember(payload, claims)
        return claims

    def _remember(self, payload: str, claims: QrClaims) -> None:
        self._verified[payload] = claims
        if len(self._verified) > _CACHE_SIZE:
            self._verified.popitem(last=False)

    def _verify_uncached(self, payload: str, version: _Format) -> QrClaims:
        if not payload.startswith(version.magic):
            raise InvalidPayload(_GENERIC)
        try:  # strict: one spelling per blob
            blob = base32.decode(payload[len(version.magic) :], version.blob_bytes)
        except ValueError:
            raise InvalidPayload(_GENERIC) from None
        signed, signature = blob[: version.signed.size], blob[version.signed.size :]
        raw_kid, merchant, card, step, *rest = version.signed.unpack(signed)
        generation = rest[0] if rest else 0
        key = self._keys.get(raw_kid)
        if key is None or (version is _V2 and generation == 0):
            raise InvalidPayload(_GENERIC)
        if not _genuine(key, version.context, signed, signature):
            raise InvalidPayload(_GENERIC)
        return QrClaims(
            key.kid, id_from_bytes("mer", merchant), id_from_bytes("card", card), step, generation
        )

    def public_keys(self) -> list[dict[str, str]]:
        """The verifying keys as a JWK-like set, for terminals that check payloads offline."""
        return [
            {
                "kid": key.kid,
                "kty": "OKP",
                "crv": "Ed25519",
                "x": base64.urlsafe_b64encode(key.public_bytes()).decode("ascii").rstrip("="),
            }
            for key in self._keys.values()
        ]

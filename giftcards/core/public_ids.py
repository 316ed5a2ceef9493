"""Opaque public ids for rows numbered by a sequence: ledger entries (`act_…`) and staff-log entries
(`slog_…`).

The primary key stays the bigint that the ledger chain and the balance check order by; what a client sees
is `prefix_` + 26 base32 characters: AES-256 of one 128-bit block holding 64 zero bits and the number,
under a key of that prefix derived from the master key. AES is a permutation, so every number has one
id and back, and consecutive numbers come out unrelated: no merchant reads the platform's volume from
its own ids. An id that was not made here decrypts to a block whose zero half is not zero (all but
certainly), and names nothing.

Until schema/migrations/0013 the numbers were shown as they are (`act_41`); those stay valid for the rows
they named:
0013 moved both sequences on to `LEGACY_LIMIT`, so a spelled-out number below it names a row made before
the change (whose number was shown anyway), and one at or above it is refused.

One codec serves the process (`install` at start, from the keyring): ids are rendered deep inside the
domain's views and on every replay of a stored answer, where no keyring is at hand.
"""

from __future__ import annotations

import hashlib
import hmac
import threading

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

from giftcards.core import base32
from giftcards.core.errors import DomainError
from giftcards.core.ids import ascii_int

PREFIXES = ("act", "slog")
LEGACY_LIMIT = 1 << 50  # schema/migrations/0013 restarts both sequences here
_MAX_NUMBER = (1 << 63) - 1  # bigint
_BLOCK = 16
_ENCODED_LENGTH = 26  # base32 of 16 bytes, no padding
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_ZERO_HALF = bytes(8)


class PublicIds:
    """Renders and parses the public ids of sequence-numbered rows, one AES key per prefix."""

    def __init__(self, key: bytes) -> None:
        # One block under ECB is AES itself, the keyed permutation wanted here: no two blocks ever share a
        # key stream or a pattern, because every id is exactly one block.
        self._ciphers = {
            prefix: Cipher(
                algorithms.AES(hmac.digest(key, prefix.encode(), hashlib.sha256)),
                modes.ECB(),  # noqa: S305
            )
            for prefix in PREFIXES
        }
        self._contexts = threading.local()  # a cipher context is not shared between threads

    def render(self, prefix: str, number: int) -> str:
        if not 0 < number <= _MAX_NUMBER:
            raise ValueError("a public id names a positive bigint")
        block = self._context(prefix, "encrypt").update(_ZERO_HALF + number.to_bytes(8, "big"))
        return f"{prefix}_{base32.encode(block).lower()}"

    def parse(self, prefix: str, value: str) -> int | None:
        """The number an id of this prefix names, or None for anything this service did not give out."""
        head, _, body = value.partition("_")
        if head != prefix or prefix not in self._ciphers:
            return None
        if len(body) != _ENCODED_LENGTH or not _ALPHABET.issuperset(body):
            legacy = ascii_int(body)
            return legacy if legacy is not None and 0 < legacy < LEGACY_LIMIT else None
        try:
            block = base32.decode(body.upper(), _BLOCK)
        except ValueError:  # the unused bits of the last symbol are set: not a spelling we give out
            return None
        plain = self._context(prefix, "decrypt").update(block)
        number = int.from_bytes(plain[8:], "big")
        if plain[:8] != _ZERO_HALF or not 0 < number <= _MAX_NUMBER:
            return None
        return number

    def _context(self, prefix: str, direction: str) -> CipherContext:
        """ECB keeps no state between blocks, so one context per thread, prefix and direction serves every
        call (making one costs ten times the block it encrypts)."""
        name = f"{prefix}_{direction}"
        context: CipherContext | None = getattr(self._contexts, name, None)
        if context is None:
            cipher = self._ciphers[prefix]
            context = cipher.encryptor() if direction == "encrypt" else cipher.decryptor()
            setattr(self._contexts, name, context)
        return context


_installed: PublicIds | None = None


def install(codec: PublicIds) -> None:
    """Make `codec` the process's (at start, from the keyring of the process's master key)."""
    global _installed
    _installed = codec


def render(prefix: str, number: int) -> str:
    return _codec().render(prefix, number)


def parse(prefix: str, value: str) -> int | None:
    return _codec().parse(prefix, value)


def parse_or_refuse(prefix: str, value: str, code: str, detail: str) -> int:
    """The number `value` names; a value that names none is the client's mistake, refused as `code`."""
    number = parse(prefix, value)
    if number is None:
        raise DomainError(code, detail)
    return number


def _codec() -> PublicIds:
    if _installed is None:
        raise RuntimeError("public ids need the master key: public_ids.install() was not called")
    return _installed

"""Resource identifiers in Stripe style: ``prefix_`` + 16 lowercase base32 characters.

The 16 characters encode exactly 10 random bytes (80 bits, RFC 4648 alphabet, no padding), so every id has
one canonical spelling and converts losslessly to 10 bytes for compact storage and signed payloads.
The prefix says what kind of resource an id names, which stops an id of one kind being used as another.
"""

from __future__ import annotations

import re
import secrets

from giftcards.core import base32

ID_BYTES = 10
_ENCODED_LENGTH = 16
_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_PREFIX = re.compile(r"[a-z][a-z0-9]*")


def _check_prefix(prefix: str) -> None:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("an id prefix is lowercase ASCII letters and digits, starting with a letter")


def new_id(prefix: str) -> str:
    """A fresh id; 80 random bits make collisions negligible without asking the database."""
    return id_from_bytes(prefix, secrets.token_bytes(ID_BYTES))


def id_from_bytes(prefix: str, raw: bytes) -> str:
    _check_prefix(prefix)
    if len(raw) != ID_BYTES:
        raise ValueError(f"an id encodes exactly {ID_BYTES} bytes")
    return f"{prefix}_{base32.encode(raw).lower()}"


def id_to_bytes(value: str, prefix: str) -> bytes:
    """The 10 bytes of an id; only the canonical lowercase spelling with the expected prefix is accepted."""
    _check_prefix(prefix)
    head = prefix + "_"
    body = value[len(head) :]
    if not value.startswith(head) or len(body) != _ENCODED_LENGTH or not _ALPHABET.issuperset(body):
        raise ValueError(f"not a valid {prefix} id")
    return base32.decode(body.upper(), ID_BYTES)


def is_id(value: str, prefix: str) -> bool:
    try:
        id_to_bytes(value, prefix)
    except ValueError:
        return False
    return True


def ascii_int(text: str, max_digits: int = 18) -> int | None:
    """`text` as a whole number when it is 1 to `max_digits` ASCII digits, else None. Client text that
    should be a number goes through here: `str.isdigit` also takes '²', which `int` then refuses, and
    `int` itself reads Arabic-Indic or fullwidth digits."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)

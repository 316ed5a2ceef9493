"""Card codes: what a person reads out, types in or scans.

A code is 19 random symbols (95 bits from `secrets`) plus one Luhn mod N check symbol (N = 32), written in
an alphabet without 0/O and 1/I look-alikes. The check symbol lets us reject a mistyped code before any
lookup. Luhn mod 32 catches every single-symbol substitution and every adjacent transposition except one:
swapping "2" and "Z" (values 0 and N-1), the same blind spot as 09 <-> 90 in decimal Luhn. No check
over the integers mod 32 can avoid such a pair; a mistyped code that slips through still matches no card.
"""

from __future__ import annotations

import secrets

ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
BODY_LENGTH = 19
CODE_LENGTH = BODY_LENGTH + 1

_N = len(ALPHABET)
_VALUE = {symbol: value for value, symbol in enumerate(ALPHABET)}


class MalformedCode(ValueError):
    """The input cannot be a card code. Messages never repeat the input, which is a bearer secret."""


# A doubled symbol adds the base-N digit sum of twice its value.
_DOUBLED = {symbol: (2 * value) // _N + (2 * value) % _N for symbol, value in _VALUE.items()}


def _luhn_sum(symbols: str, double_rightmost: bool) -> int:
    """Every second symbol from the right is doubled, starting with the rightmost or the one before it."""
    rightmost, next_to_it = symbols[::-1][0::2], symbols[::-1][1::2]
    doubled, plain = (rightmost, next_to_it) if double_rightmost else (next_to_it, rightmost)
    return sum(map(_DOUBLED.__getitem__, doubled)) + sum(map(_VALUE.__getitem__, plain))


def check_symbol(body: str) -> str:
    """The Luhn mod N symbol that makes ``body + symbol`` valid."""
    if not body or not set(body) <= _VALUE.keys():
        raise ValueError("the body must be non-empty and use only the code alphabet")
    return _check_symbol_of(body)


def _check_symbol_of(body: str) -> str:
    """check_symbol without the look at the input, for bodies made here from the alphabet."""
    return ALPHABET[(-_luhn_sum(body, double_rightmost=True)) % _N]


# 32 divides 256, so the low five bits of a random byte pick a symbol uniformly (95 bits in all).
_SYMBOL_OF_BYTE = bytes.maketrans(bytes(range(256)), bytes(ord(ALPHABET[byte & 31]) for byte in range(256)))


def generate_code() -> str:
    """A fresh canonical code; cheap, since bulk issuance makes 100,000 at a time."""
    body = secrets.token_bytes(BODY_LENGTH).translate(_SYMBOL_OF_BYTE).decode()
    return body + _check_symbol_of(body)


def normalize_code(raw: str) -> str:
    """The canonical 20-symbol form of what a person typed, or `MalformedCode`.

    Non-ASCII input is refused before upper-casing, which would turn the long s (U+017F) into "S".
    """
    if not raw.isascii():
        raise MalformedCode("a card code uses only the code alphabet")
    code = raw.upper().replace(" ", "").replace("-", "")
    if len(code) != CODE_LENGTH:
        raise MalformedCode(f"a card code has {CODE_LENGTH} symbols")
    if not set(code) <= _VALUE.keys():
        raise MalformedCode("a card code uses only the code alphabet")
    if _luhn_sum(code, double_rightmost=False) % _N:
        raise MalformedCode("the card code is mistyped: its check symbol does not match")
    return code


def is_well_formed(raw: str) -> bool:
    try:
        normalize_code(raw)
    except MalformedCode:
        return False
    return True


def format_code(code: str) -> str:
    """Groups of four joined by hyphens, the form we print and show (``ABCD-EFGH-JKLM-NPQR-STUV``)."""
    normalized = normalize_code(code)
    return "-".join(normalized[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def last4(code: str) -> str:
    """The last four symbols, enough to tell a person's cards apart without revealing them."""
    return normalize_code(code)[-4:]

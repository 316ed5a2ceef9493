"""The fast base32 codec spells what RFC 4648 (the standard library) spells, and reads nothing else."""

from __future__ import annotations

import base64
import os

import pytest

from giftcards.core import base32


@pytest.mark.parametrize("size", [0, 1, 4, 5, 9, 10, 11, 28, 92, 93])
def test_it_spells_what_the_standard_library_spells(size: int) -> None:
    for _ in range(50):
        raw = os.urandom(size)
        text = base32.encode(raw)
        assert text == base64.b32encode(raw).decode("ascii").rstrip("=")
        assert base32.decode(text, size) == raw


def test_it_reads_only_the_one_canonical_spelling() -> None:
    raw = bytes(range(92))
    text = base32.encode(raw)  # 148 symbols carry 740 bits: the last 4 are unused and must be zero
    last = base32.ALPHABET.index(text[-1])
    for spare_bits in range(1, 16):
        if last | spare_bits != last:
            with pytest.raises(ValueError):
                base32.decode(text[:-1] + base32.ALPHABET[last | spare_bits], 92)
    for bad in (text.lower(), text[:-1], text + "A", text[:-1] + "=", text[:-1] + "1", text[:-1] + "8"):
        with pytest.raises(ValueError):
            base32.decode(bad, 92)

from __future__ import annotations

import re

import pytest

from giftcards.core.ids import id_from_bytes, id_to_bytes, is_id, new_id

PREFIXES = ["mer", "card", "key", "store", "term", "design", "gift", "batch"]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_new_id_shape_and_round_trip(prefix: str) -> None:
    value = new_id(prefix)
    assert re.fullmatch(rf"{prefix}_[a-z2-7]{{16}}", value)
    raw = id_to_bytes(value, prefix)
    assert len(raw) == 10
    assert id_from_bytes(prefix, raw) == value
    assert is_id(value, prefix)


def test_known_encodings() -> None:
    assert id_from_bytes("mer", bytes(10)) == "mer_aaaaaaaaaaaaaaaa"
    assert id_from_bytes("card", b"\xff" * 10) == "card_7777777777777777"
    assert id_from_bytes("gift", b"helloworld") == "gift_nbswy3dpo5xxe3de"
    assert id_to_bytes("gift_nbswy3dpo5xxe3de", "gift") == b"helloworld"


def test_new_ids_are_distinct() -> None:
    assert len({new_id("card") for _ in range(10_000)}) == 10_000


def test_every_byte_value_round_trips() -> None:
    for start in range(0, 256, 10):
        raw = bytes((start + i) % 256 for i in range(10))
        assert id_to_bytes(id_from_bytes("key", raw), "key") == raw


GOOD = "mer_nbswy3dpo5xxe3de"


@pytest.mark.parametrize(
    ("value", "prefix"),
    [
        (GOOD, "card"),  # another kind of id
        (GOOD, "me"),
        ("card_nbswy3dpo5xxe3de", "mer"),
        ("mernbswy3dpo5xxe3de", "mer"),  # no separator
        ("mer-nbswy3dpo5xxe3de", "mer"),
        ("MER_nbswy3dpo5xxe3de", "mer"),
        ("mer_NBSWY3DPO5XXE3DE", "mer"),  # only the canonical lowercase spelling
        ("mer_nbswy3dpo5xxe3d", "mer"),  # 15 characters
        ("mer_nbswy3dpo5xxe3dea", "mer"),  # 17 characters
        ("mer_nbswy3dpo5xxe3d0", "mer"),  # 0, 1, 8, 9 are not base32
        ("mer_nbswy3dpo5xxe3d1", "mer"),
        ("mer_nbswy3dpo5xxe3d8", "mer"),
        ("mer_nbswy3dpo5xxe3d9", "mer"),
        ("mer_nbswy3dpo5xxe3d=", "mer"),
        ("mer_nbswy3dpo5xxe3dé", "mer"),
        ("mer_nbswy3dpo5xxe3d ", "mer"),
        ("mer_", "mer"),
        ("", "mer"),
        (GOOD + "\n", "mer"),
        (" " + GOOD, "mer"),
    ],
)
def test_rejects(value: str, prefix: str) -> None:
    with pytest.raises(ValueError, match=f"not a valid {prefix} id"):
        id_to_bytes(value, prefix)
    assert not is_id(value, prefix)


@pytest.mark.parametrize("prefix", ["", "Mer", "m_r", "1mer", "mer ", "mér"])
def test_bad_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id(prefix)
    with pytest.raises(ValueError, match="prefix"):
        id_to_bytes(f"{prefix}_aaaaaaaaaaaaaaaa", prefix)
    assert not is_id(f"{prefix}_aaaaaaaaaaaaaaaa", prefix)


@pytest.mark.parametrize("size", [0, 9, 11, 16])
def test_id_from_bytes_needs_ten_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="10 bytes"):
        id_from_bytes("card", bytes(size))

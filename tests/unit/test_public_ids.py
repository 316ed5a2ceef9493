"""Activity and staff-log ids: opaque, one per number and back, and nothing else names a row."""

from __future__ import annotations

import itertools
import re

import pytest

from giftcards.core.ids import ascii_int
from giftcards.core.public_ids import LEGACY_LIMIT, PublicIds

IDS = PublicIds(bytes(range(32)))
NUMBERS = [1, 2, 3, 41, LEGACY_LIMIT - 1, LEGACY_LIMIT, LEGACY_LIMIT + 1, 2**63 - 1]


@pytest.mark.parametrize("prefix", ["act", "slog"])
@pytest.mark.parametrize("number", NUMBERS)
def test_an_id_has_one_opaque_spelling_and_names_its_number(prefix: str, number: int) -> None:
    value = IDS.render(prefix, number)
    assert re.fullmatch(rf"{prefix}_[a-z2-7]{{26}}", value)
    assert IDS.parse(prefix, value) == number
    assert IDS.render(prefix, number) == value


def test_consecutive_numbers_give_unrelated_ids() -> None:
    bodies = [IDS.render("act", LEGACY_LIMIT + n)[4:] for n in range(1_000)]
    assert len(set(bodies)) == 1_000
    assert sorted(bodies) != bodies  # ordered by number, they are not ordered as text
    for before, after in itertools.pairwise(bodies):
        assert sum(a == b for a, b in zip(before, after, strict=True)) < 10  # ~1 in 32 agree by chance


def test_the_key_and_the_kind_change_every_id() -> None:
    other = PublicIds(bytes(32))
    assert IDS.render("act", 7)[4:] != other.render("act", 7)[4:]
    assert IDS.render("act", 7)[4:] != IDS.render("slog", 7)[5:]
    assert other.parse("act", IDS.render("act", 7)) is None  # another installation's id names nothing
    assert IDS.parse("slog", "slog_" + IDS.render("act", 7)[4:]) is None  # nor an id of another kind


def test_tampered_or_made_up_ids_name_nothing() -> None:
    value = IDS.render("act", LEGACY_LIMIT + 5)
    flips = [value[:i] + ("a" if value[i] != "a" else "b") + value[i + 1 :] for i in range(4, len(value))]
    assert [IDS.parse("act", flipped) for flipped in flips] == [None] * len(flips)
    for made_up in (
        "act_" + "a" * 26,
        "act_" + "7" * 26,
        value.upper(),
        "act_" + value[4:].upper(),
        value + "a",
    ):
        assert IDS.parse("act", made_up) is None, made_up


@pytest.mark.parametrize(
    "value",
    [
        "act_",
        "act_0",
        "act_-1",
        "act_\u00b2",
        "act_12\u00b3",
        "act_\u0661\u0662",
        "act_\uff11\uff12",
        "act_1e3",
        "act_ 1",
        "act__1",
        "41",
    ],
)
def test_hostile_spellings_name_nothing(value: str) -> None:
    assert IDS.parse("act", value) is None


def test_ids_shown_before_they_were_opaque_still_name_their_rows() -> None:
    assert IDS.parse("act", "act_41") == 41
    assert IDS.parse("slog", "slog_7") == 7
    assert IDS.parse("act", f"act_{LEGACY_LIMIT - 1}") == LEGACY_LIMIT - 1
    # Numbered after the change: only the opaque spelling names them, a spelled-out number tells nothing.
    assert IDS.parse("act", f"act_{LEGACY_LIMIT}") is None
    assert IDS.parse("act", f"act_{LEGACY_LIMIT + 12}") is None


def test_rendering_refuses_what_is_not_a_bigint_key() -> None:
    for number in (0, -1, 2**63):
        with pytest.raises(ValueError):
            IDS.render("act", number)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("123", 123),
        ("\u00b2", None),
        ("\u0661\u0662", None),
        ("\uff11\uff12", None),
        ("", None),
        ("-1", None),
        ("1" * 19, None),
    ],
)
def test_ascii_int_takes_ascii_digits_only(text: str, expected: int | None) -> None:
    assert ascii_int(text) == expected

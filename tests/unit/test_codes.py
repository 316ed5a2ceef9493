from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from giftcards.value.codes import (
    ALPHABET,
    MalformedCode,
    check_symbol,
    format_code,
    generate_code,
    is_well_formed,
    last4,
    normalize_code,
)

# Reproducible sample for the exhaustive error-detection checks; generate_code itself uses `secrets`.
_SAMPLE = random.Random(20240601)


def _sample_codes(count: int) -> list[str]:
    bodies = ("".join(_SAMPLE.choice(ALPHABET) for _ in range(19)) for _ in range(count))
    return [body + check_symbol(body) for body in bodies]


def test_alphabet() -> None:
    assert ALPHABET == "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    assert len(set(ALPHABET)) == 32
    assert not set("01IO") & set(ALPHABET)


def test_generated_codes_are_well_formed() -> None:
    for _ in range(1000):
        code = generate_code()
        assert len(code) == 20
        assert set(code) <= set(ALPHABET)
        assert normalize_code(code) == code


def test_generated_codes_are_distinct_and_uniform() -> None:
    codes = [generate_code() for _ in range(10_000)]
    assert len(set(codes)) == 10_000
    counts = Counter(symbol for code in codes for symbol in code[:19])
    assert set(counts) == set(ALPHABET)
    expected = 10_000 * 19 / 32
    chi_square = sum((counts[s] - expected) ** 2 / expected for s in ALPHABET)
    # 31 degrees of freedom: mean 31; exceeding 100 has probability below 1e-8 for a uniform source.
    assert chi_square < 100
    # every position varies too, so no symbol slot is fixed
    assert all(len({code[i] for code in codes}) == 32 for i in range(20))


@pytest.mark.parametrize(
    ("body", "symbol"),
    [
        # Worked by hand: values are alphabet positions; from the right, every other value is doubled and
        # a doubled value d >= 32 counts as 1 + (d - 32); the check makes the total a multiple of 32.
        ("2" * 19, "2"),
        ("2" * 18 + "3", "Y"),  # 2*1 = 2 -> 30
        ("2" * 17 + "32", "Z"),  # 1 (undoubled) -> 31
        ("2" * 18 + "Z", "3"),  # 2*31 = 62 -> 1 + 30 = 31 -> 1
        ("2" * 17 + "Z2", "3"),  # 31 -> 1: the same check as "...2Z", the one transposition Luhn misses
        ("2" * 16 + "ZZZ", "5"),  # 31 + 31 + 31 = 93 -> 93 % 32 = 29 -> 3
    ],
)
def test_check_symbol_known_answers(body: str, symbol: str) -> None:
    assert check_symbol(body) == symbol
    assert is_well_formed(body + symbol)


@pytest.mark.parametrize("body", ["", "0" * 19, "a" * 19, "I" * 19])
def test_check_symbol_refuses_foreign_symbols(body: str) -> None:
    with pytest.raises(ValueError):
        check_symbol(body)


def test_every_single_substitution_is_detected() -> None:
    for code in _sample_codes(200):
        for i in range(20):
            for symbol in ALPHABET.replace(code[i], ""):
                assert not is_well_formed(code[:i] + symbol + code[i + 1 :]), (code, i, symbol)


def test_every_adjacent_transposition_except_2_z_is_detected() -> None:
    missed = set()
    for code in _sample_codes(200):
        for i in range(19):
            a, b = code[i], code[i + 1]
            if a != b and is_well_formed(code[:i] + b + a + code[i + 2 :]):
                missed.add(frozenset((a, b)))
    assert missed == {frozenset("2Z")}  # the seeded sample does contain adjacent 2/Z pairs


def test_2_z_is_the_only_undetected_transposition() -> None:
    """Luhn mod 32 misses exactly the swap of values 0 and 31 ("2" and "Z"), in every position.

    Weights alternate 2, 1 from the right (the check symbol has weight 1), so whether a swap is caught
    depends only on the two symbols and on which of them is doubled: the pairs at (16, 17) and (17, 18)
    cover both cases for all 32 * 31 ordered symbol pairs, including swaps with the check symbol.
    """
    base = _sample_codes(1)[0][:19]
    for i in (16, 17):
        missed = set()
        for a in ALPHABET:
            for b in ALPHABET.replace(a, ""):
                body = base[:i] + a + b + base[i + 2 :]
                code = body + check_symbol(body)
                if is_well_formed(code[:i] + b + a + code[i + 2 :]):
                    missed.add((a, b))
        assert missed == {("2", "Z"), ("Z", "2")}, i


def test_normalization() -> None:
    code = generate_code()
    expected = code
    assert normalize_code(code.lower()) == expected
    assert normalize_code(format_code(code)) == expected
    assert normalize_code(format_code(code).lower().replace("-", " ")) == expected
    assert normalize_code(f"  {code[:3]} -{code[3:11].lower()}--  {code[11:]} ") == expected


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c[:19],
        lambda c: c + "2",
        lambda c: "",
        lambda c: "-" * 20,
        lambda c: c[:19] + "0",
        lambda c: c[:19] + "O",
        lambda c: c[:19] + "1",
        lambda c: c[:19] + "I",
        lambda c: c[:10] + "\t" + c[10:],
        lambda c: c[:10] + "_" + c[10:],
        lambda c: c[:10] + "\u00a0" + c[10:],  # no-break space is not a separator
        lambda c: c[:10] + "\u2010" + c[10:],  # nor is a Unicode hyphen
    ],
)
def test_malformed_inputs(mutate: Callable[[str], str]) -> None:
    code = generate_code()
    raw = mutate(code)
    with pytest.raises(MalformedCode) as excinfo:
        normalize_code(raw)
    assert isinstance(excinfo.value, ValueError)
    assert code[:8] not in str(excinfo.value)
    assert not is_well_formed(raw)


def test_non_ascii_that_uppercases_into_the_alphabet_is_refused() -> None:
    body = "2" * 18 + "S"
    code = body + check_symbol(body)
    assert is_well_formed(code)
    assert "\u017f".upper() == "S"  # LATIN SMALL LETTER LONG S
    assert not is_well_formed(code.replace("S", "\u017f"))


def test_failed_check_message_does_not_reveal_the_code() -> None:
    code = generate_code()
    wrong = code[:19] + ALPHABET[(ALPHABET.index(code[19]) + 1) % 32]
    for raw in (wrong, format_code(code)[:-1] + wrong[-1], wrong.lower()):
        with pytest.raises(MalformedCode, match="check symbol") as excinfo:
            normalize_code(raw)
        message = str(excinfo.value)
        assert wrong not in message and wrong[:4] not in message and wrong[-4:] not in message


def test_format_and_last4() -> None:
    body = "ABCDEFGHJKLMNPQRSTU"
    code = body + check_symbol(body)
    assert code == "ABCDEFGHJKLMNPQRSTUF"  # hand-worked: the weighted sum is 307 = 19 mod 32 -> 13
    assert format_code(code) == "ABCD-EFGH-JKLM-NPQR-STUF"
    assert format_code(code.lower()) == "ABCD-EFGH-JKLM-NPQR-STUF"
    assert last4(code) == "STUF"
    assert last4("abcd efgh jklm npqr stuf") == "STUF"
    with pytest.raises(MalformedCode):
        format_code("ABCD-EFGH-JKLM-NPQR-STUV")
    with pytest.raises(MalformedCode):
        last4(code[:19])

"""Document-number rules: the DIAN check digit, the shape of each type, generated numbers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared import documents

# NITs of Colombian companies and public entities, as they publish them.
PUBLIC_NITS = {
    "800197268-4": "DIAN",
    "899999068-1": "Ecopetrol",
    "890903938-8": "Bancolombia",
    "890900608-9": "Almacenes Éxito",
    "890100577-6": "Avianca",
    "899999063-3": "Universidad Nacional de Colombia",
    "860005216-7": "Banco de la República",
    "899999061-9": "Bogotá D.C.",
    "890904996-1": "Empresas Públicas de Medellín",
    "800153993-7": "Comcel (Claro)",
    "860002964-4": "Banco de Bogotá",
    "860034313-7": "Davivienda",
    "899999115-8": "ETB",
    "860005224-6": "Bavaria",
}
nine_digits = st.integers(min_value=100_000_000, max_value=999_999_999).map(str)


@pytest.mark.parametrize("nit", sorted(PUBLIC_NITS))
def test_check_digit_of_public_nits(nit: str) -> None:
    number, check_digit = nit.split("-")
    assert documents.nit_check_digit(number) == int(check_digit)
    assert documents.is_valid_nit(nit)
    assert documents.format_nit(number) == nit
    assert documents.is_well_formed("NIT", nit)


def test_check_digit_by_hand() -> None:
    # 900123456: 6·3 + 5·7 + 4·13 + 3·17 + 2·19 + 1·23 + 0·29 + 0·37 + 9·41 = 586;
    # 586 % 11 = 3, so the digit is 11 - 3 = 8.
    assert documents.nit_check_digit("900123456") == 8
    # A remainder of 0 or 1 is the digit itself.
    assert documents.nit_check_digit("0") == 0
    assert documents.nit_check_digit("4") == 1  # 4·3 = 12, 12 % 11 = 1


@given(nine_digits)
def test_computed_check_digit_validates(number: str) -> None:
    check_digit = documents.nit_check_digit(number)
    assert 0 <= check_digit <= 9
    assert documents.is_valid_nit(f"{number}-{check_digit}")


@given(nine_digits, st.integers(min_value=0, max_value=9))
def test_any_other_check_digit_does_not_validate(number: str, check_digit: int) -> None:
    valid = documents.is_valid_nit(f"{number}-{check_digit}")
    assert valid == (check_digit == documents.nit_check_digit(number))


@pytest.mark.parametrize(
    "value",
    [
        "800197268-5",
        "800197268",
        "8001972684",
        "800197268-",
        "-4",
        "80019726A-4",
        "",
        "800197268-44",
    ],
)
def test_malformed_or_wrong_nits_are_invalid(value: str) -> None:
    assert not documents.is_valid_nit(value)


@pytest.mark.parametrize("number", ["", "12a", "١٢٣", "1" * 16])
def test_check_digit_refuses_what_is_not_a_nit(number: str) -> None:
    with pytest.raises(ValueError, match="a NIT is 1 to 15 digits"):
        documents.nit_check_digit(number)


@pytest.mark.parametrize(
    ("codigo", "good", "bad"),
    [
        (
            "CC",
            ["123456", "79123456", "1020304050"],
            ["12345", "12345678901", "012345678", "1.234"],
        ),
        ("CE", ["123456", "1234567"], ["12345", "12345678", "AB12345"]),
        ("TI", ["1001234567", "95061512345"], ["123456789", "123456789012"]),
        ("PA", ["AB123456", "ZZ000001"], ["ab123456", "AB12345", "A1234567", "AB1234567"]),
        ("NIT", ["900123456-8", "800197268-4"], ["900123456-7", "900123456", "90012345-6"]),
    ],
)
def test_shapes(codigo: str, good: list[str], bad: list[str]) -> None:
    assert all(documents.is_well_formed(codigo, numero) for numero in good)
    assert not any(documents.is_well_formed(codigo, numero) for numero in bad)


def test_unknown_type_is_never_well_formed() -> None:
    assert not documents.is_well_formed("XX", "123456")


@given(
    st.sampled_from(sorted(documents.SHAPES)),
    st.integers(min_value=0, max_value=8_999_999),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_every_candidate_is_well_formed_and_distinct(
    codigo: str, ordinal: int, pick: float
) -> None:
    numbers = list(documents.candidates(codigo, ordinal, pick))
    assert numbers, "every type has numbers for the first nine million ids"
    assert all(documents.is_well_formed(codigo, numero) for numero in numbers)
    assert len(set(numbers)) == len(numbers)


@given(
    st.sampled_from(sorted(documents.SHAPES)),
    st.lists(st.integers(min_value=0, max_value=800_000), min_size=2, max_size=2, unique=True),
    st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), min_size=2, max_size=2),
)
def test_distinct_ordinals_never_share_a_number(
    codigo: str, ordinals: list[int], picks: list[float]
) -> None:
    # Every candidate, not just the first: an alternative never lands on another id's number.
    first = set(documents.candidates(codigo, ordinals[0], picks[0]))
    second = set(documents.candidates(codigo, ordinals[1], picks[1]))
    assert first.isdisjoint(second)


@pytest.mark.parametrize("codigo", sorted(documents.SHAPES))
def test_a_run_of_ids_gets_unique_numbers_of_every_length(codigo: str) -> None:
    rng = random.Random(codigo)
    numbers = [
        next(documents.candidates(codigo, ordinal, rng.random())) for ordinal in range(20_000)
    ]
    assert len(set(numbers)) == len(numbers)
    shape = documents.SHAPES[codigo]
    assert all(shape.fullmatch(numero) for numero in numbers)
    lengths = {len(numero) for numero in numbers}
    expected = {"CC": {6, 7, 8, 10}, "CE": {6, 7}, "TI": {10, 11}, "PA": {8}, "NIT": {11}}
    assert lengths == expected[codigo]


def test_ids_beyond_a_block_use_the_others() -> None:
    # 6-digit cédulas de extranjería run out at 900,000 ids; 7-digit ones at 9,000,000.
    assert {len(n) for n in documents.candidates("CE", 899_999, 0.99)} == {6, 7}
    assert [len(n) for n in documents.candidates("CE", 900_000, 0.99)] == [7]
    assert list(documents.candidates("CE", 9_000_000, 0.5)) == []

"""Colombian identity documents: the shape of each type's number and the NIT check digit (DIAN).

Pure functions: the seed generator draws numbers from here and the tests validate against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

# DIAN weights, applied from the rightmost digit of the NIT leftwards (15 digits at most).
NIT_WEIGHTS = (3, 7, 13, 17, 19, 23, 29, 37, 41, 43, 47, 53, 59, 67, 71)
_NIT = re.compile(r"([0-9]{1,15})-([0-9])")

# What a well-formed number of each type looks like.
SHAPES: dict[str, re.Pattern[str]] = {
    "CC": re.compile(r"[1-9][0-9]{5,9}"),  # cédula de ciudadanía: 6 to 10 digits
    "CE": re.compile(r"[1-9][0-9]{5,6}"),  # cédula de extranjería: 6 or 7 digits
    "TI": re.compile(r"[1-9][0-9]{9,10}"),  # tarjeta de identidad: 10 or 11 digits
    "PA": re.compile(r"[A-Z]{2}[0-9]{6}"),  # pasaporte: AB123456
    "NIT": re.compile(r"[0-9]{9}-[0-9]"),  # 9 digits and the DIAN check digit: 900123456-7
}


def nit_check_digit(number: str) -> int:
    """The DIAN check digit ("dígito de verificación") of a NIT given without it."""
    if not (number.isascii() and number.isdigit()) or len(number) > len(NIT_WEIGHTS):
        raise ValueError(f"a NIT is 1 to {len(NIT_WEIGHTS)} digits, got {number!r}")
    digits = reversed(number)  # shorter than the weights: zip stops at its end
    remainder = sum(int(d) * weight for d, weight in zip(digits, NIT_WEIGHTS, strict=False)) % 11
    return remainder if remainder in (0, 1) else 11 - remainder


def format_nit(number: int | str) -> str:
    """`900123456` → `900123456-7`."""
    return f"{number}-{nit_check_digit(str(number))}"


def is_valid_nit(value: str) -> bool:
    """True for `number-dv` whose dv is the DIAN check digit of number (`800197268-4`)."""
    match = _NIT.fullmatch(value)
    return match is not None and nit_check_digit(match[1]) == int(match[2])


def is_well_formed(codigo: str, numero: str) -> bool:
    """Whether numero has the shape of its document type (and, for a NIT, a valid check digit)."""
    shape = SHAPES.get(codigo)
    if shape is None or shape.fullmatch(numero) is None:
        return False
    return codigo != "NIT" or is_valid_nit(numero)


# Generation. Each type draws its numbers from a few disjoint blocks (say, 8- and 10-digit
# cédulas). Within a block, number = low + (ordinal * _SPREAD + _SHIFT) % size: an affine
# bijection of [0, size), since _SPREAD is a prime that divides no block size. So two distinct
# ordinals never get the same number, whatever block each lands in, while neighbouring ordinals
# land far apart and the numbers look random.
_SPREAD = 2_654_435_761
_SHIFT = 104_729


@dataclass(frozen=True, slots=True)
class _Block:
    low: int
    size: int
    weight: float

    def number(self, ordinal: int) -> int:
        return self.low + (ordinal * _SPREAD + _SHIFT) % self.size


_BLOCKS: dict[str, tuple[_Block, ...]] = {
    "CC": (
        _Block(1_000_000_000, 200_000_000, 0.50),  # today's 10-digit cédulas, 10xx… and 11xx…
        _Block(10_000_000, 90_000_000, 0.38),
        _Block(1_000_000, 9_000_000, 0.09),
        _Block(100_000, 900_000, 0.03),
    ),
    "CE": (_Block(1_000_000, 9_000_000, 0.8), _Block(100_000, 900_000, 0.2)),
    "TI": (_Block(1_000_000_000, 200_000_000, 0.7), _Block(10_000_000_000, 90_000_000_000, 0.3)),
    "NIT": (_Block(900_000_000, 100_000_000, 0.6), _Block(800_000_000, 100_000_000, 0.4)),
    # Passports: the number n is the letter pair n // 10**6 (0 = AA … 675 = ZZ) then 6 digits.
    "PA": (_Block(0, 338_000_000, 0.6), _Block(338_000_000, 338_000_000, 0.4)),
}
_CUMULATIVE_WEIGHTS = {
    codigo: tuple(accumulate(block.weight for block in blocks))
    for codigo, blocks in _BLOCKS.items()
}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _passport(number: int) -> str:
    pair, digits = divmod(number, 1_000_000)
    return f"{_LETTERS[pair // 26]}{_LETTERS[pair % 26]}{digits:06d}"


def _render(codigo: str, number: int) -> str:
    if codigo == "NIT":
        return format_nit(number)
    if codigo == "PA":
        return _passport(number)
    return str(number)


def candidates(codigo: str, ordinal: int, pick: float) -> Iterator[str]:
    """Document numbers of type codigo for the ordinal-th customer, the preferred one first.

    pick, in [0, 1), chooses the first block by weight; the other blocks follow, as alternatives
    for a number someone else already holds. Distinct ordinals (≥ 0) never share a number. A
    block only serves ordinals below its size, so a very large ordinal may have no candidate.
    """
    blocks = _BLOCKS[codigo]
    total = _CUMULATIVE_WEIGHTS[codigo][-1]
    preferred = next(
        (i for i, bound in enumerate(_CUMULATIVE_WEIGHTS[codigo]) if pick * total < bound),
        len(blocks) - 1,
    )
    for block in (blocks[preferred], *blocks[:preferred], *blocks[preferred + 1 :]):
        if ordinal < block.size:
            yield _render(codigo, block.number(ordinal))

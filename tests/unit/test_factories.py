"""The factories' promise: what they hand out is no one else's within a run, by construction."""

from __future__ import annotations

import itertools
from datetime import time, timedelta

import pytest

from shared import documents
from tests.factories import BUSINESS_TZ, report_window, unique_digits, unique_number

TYPES = ("CC", "CE", "TI", "PA", "NIT")


def test_document_numbers_are_well_formed_and_unique_across_every_type() -> None:
    numbers = [(codigo, unique_number(codigo)) for _ in range(2000) for codigo in TYPES]
    assert all(documents.is_well_formed(codigo, numero) for codigo, numero in numbers)
    assert len({numero for _, numero in numbers}) == len(numbers)


def test_unique_digits_never_repeat_nor_come_too_short() -> None:
    drawn = [unique_digits(9) for _ in range(5000)]
    assert len(set(drawn)) == len(drawn) and all(len(d) == 9 for d in drawn)
    with pytest.raises(ValueError, match="7 digits"):
        unique_digits(6)


def test_report_windows_are_whole_days_apart_and_never_touch() -> None:
    windows = [report_window(days) for days in (1, 10, 3) * 30]
    for window in windows:
        assert window.desde.tzinfo is BUSINESS_TZ and window.desde.timetz() == time(
            tzinfo=BUSINESS_TZ
        )
        assert window.desde < window.middle < window.hasta
        assert window.desde.year >= 1920 and window.hasta.year < 1970
    ordered = sorted(windows, key=lambda window: window.desde)
    for earlier, later in itertools.pairwise(ordered):
        # A purchase at hasta, or a microsecond before desde, still lands in no other window.
        assert later.desde - earlier.hasta >= timedelta(days=1)
    assert windows[0].params() == {
        "desde": windows[0].desde.date().isoformat(),
        "hasta": (windows[0].desde + timedelta(days=1)).date().isoformat(),
    }

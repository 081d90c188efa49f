"""CSV formula-injection escaping: a pure function, tested directly and by property."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from services.export_worker.renderers import (
    FORMULA_TRIGGERS,
    escape_formula,
    unescape_formula,
)

NUMBER_OR_PHONE = st.from_regex(r"\A[+-]?[0-9]{1,12}(\.[0-9]{1,4})?\Z") | st.from_regex(
    r"\A\+[0-9]{1,3} \(?[0-9]{3}\)? [0-9]{3}[ -][0-9]{4}\Z"
)


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+cmd", "'+cmd"),
        ("-2+3", "'-2+3"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+57 300 123 4567", "+57 300 123 4567"),
        ("+57 (300) 123-4567", "+57 (300) 123-4567"),
        ("+573001234567", "+573001234567"),
        ("-12.5", "-12.5"),
        ("+15", "+15"),
        ("1500000.00", "1500000.00"),
        ("Ana María", "Ana María"),
        ("", ""),
        ("a=b", "a=b"),
        ("'=already quoted", "''=already quoted"),
        ("'plain", "'plain"),
    ],
)
def test_escape_examples(text: str, escaped: str) -> None:
    assert escape_formula(text) == escaped
    assert unescape_formula(escaped) == text


@given(st.text())
@example("=1+1")
@example("''=x")
@example("'-1")
@example("-1-1")
def test_escaped_field_never_starts_a_formula(text: str) -> None:
    escaped = escape_formula(text)
    if escaped.startswith(FORMULA_TRIGGERS):
        # Only a plain number or phone number may keep its leading sign.
        assert escaped == text
        assert escaped[0] in "+-"
        assert all(character in "0123456789 ()+-." for character in escaped)


@given(st.text())
@example("'")
@example("''")
@example("'=")
def test_unescape_gives_back_the_original(text: str) -> None:
    assert unescape_formula(escape_formula(text)) == text


@given(st.sampled_from(FORMULA_TRIGGERS), st.text())
def test_text_starting_with_a_trigger_is_quoted(trigger: str, rest: str) -> None:
    text = trigger + rest
    escaped = escape_formula(text)
    assert escaped in {text, "'" + text}
    if not escaped.startswith("'"):
        assert trigger in "+-"  # a number or phone, left as it is


@given(NUMBER_OR_PHONE)
def test_numbers_and_phones_are_left_alone(text: str) -> None:
    assert escape_formula(text) == text

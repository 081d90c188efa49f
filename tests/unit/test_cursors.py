"""Signed pagination cursors (services/query_api/cursors.py): round trips, and every forgery,
truncation or piece of garbage refused, by property."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from services.query_api import cursors

_key_parts = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text())


_keys = st.lists(_key_parts, max_size=4)


_SECRET = "test-secret"


@given(key=_keys, purpose=st.text(), secret=st.text(min_size=1))
def test_cursor_round_trip(key: list[int | str], purpose: str, secret: str) -> None:
    cursor = cursors.encode(key, purpose=purpose, secret=secret)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert cursors.decode(cursor, purpose=purpose, secret=secret) == key


@given(key=_keys, position=st.integers(min_value=0), replacement=st.characters())
def test_any_changed_character_is_refused(
    key: list[int | str], position: int, replacement: str
) -> None:
    cursor = cursors.encode(key, purpose="clientes", secret=_SECRET)
    index = position % len(cursor)
    assume(cursor[index] != replacement)
    changed = cursor[:index] + replacement + cursor[index + 1 :]
    with pytest.raises(cursors.InvalidCursor):
        cursors.decode(changed, purpose="clientes", secret=_SECRET)


@given(key=_keys, cut=st.integers(min_value=1))
def test_truncated_cursors_are_refused(key: list[int | str], cut: int) -> None:
    cursor = cursors.encode(key, purpose="clientes", secret=_SECRET)
    with pytest.raises(cursors.InvalidCursor):
        cursors.decode(cursor[: -(cut % len(cursor)) or -1], purpose="clientes", secret=_SECRET)


@given(garbage=st.text())
def test_garbage_is_refused_never_crashes(garbage: str) -> None:
    with pytest.raises(cursors.InvalidCursor):
        cursors.decode(garbage, purpose="clientes", secret=_SECRET)


def test_a_cursor_is_bound_to_its_purpose_and_secret() -> None:
    cursor = cursors.encode_id(42, purpose="clientes", secret=_SECRET)
    assert cursors.decode_id(cursor, purpose="clientes", secret=_SECRET) == 42
    for purpose, secret in [("compras:1", _SECRET), ("clientes", "another secret")]:
        with pytest.raises(cursors.InvalidCursor):
            cursors.decode(cursor, purpose=purpose, secret=secret)
    with pytest.raises(cursors.InvalidCursor):  # right signature, wrong key shape
        cursors.decode_moment_id(cursor, purpose="clientes", secret=_SECRET)


@given(moment=st.datetimes(timezones=st.just(UTC)), last_id=st.integers(1, 2**63 - 1))
def test_moment_id_cursor_round_trip(moment: datetime, last_id: int) -> None:
    cursor = cursors.encode_moment_id((moment, last_id), purpose="c", secret=_SECRET)
    assert cursors.decode_moment_id(cursor, purpose="c", secret=_SECRET) == (moment, last_id)

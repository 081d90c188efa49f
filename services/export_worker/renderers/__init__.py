"""What every file renderer shares: the document it renders, its columns, and the escaping.

A renderer turns a `Document` into bytes, streaming its rows in order, so memory stays flat
however many rows there are. One module per format (`csv`, `excel`, `txt`), each exposing a
`FILE_FORMAT`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import BinaryIO, TypeAlias
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, not_

from shared.file_formats import FileType

Value: TypeAlias = str | int | Decimal | datetime | None
Row: TypeAlias = Sequence[Value]


class Kind(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    MONEY = "money"  # COP, 2 decimals
    DATETIME = "datetime"  # aware; printed in the business timezone


@dataclass(frozen=True, slots=True)
class Column:
    title: str
    kind: Kind = Kind.TEXT
    width: int = 14  # characters: the xlsx column width and the TXT field width


@dataclass(frozen=True, slots=True)
class Document:
    """A table plus what describes it.

    `record` (the customer of an export) and `totals` hold one value per column. CSV and Excel
    repeat them at the start of every table row, so that each row stands alone for a program
    reading the file back; TXT prints them as blocks above and below the table.
    """

    title: str
    sheet_name: str
    columns: Sequence[Column]
    rows: Iterable[Row]
    parameters: Sequence[tuple[str, Value]]
    generated_at: datetime
    timezone: ZoneInfo
    record: Sequence[tuple[Column, Value]] = ()
    record_title: str = ""
    totals: Sequence[tuple[Column, Value]] = ()

    def flat_columns(self) -> list[Column]:
        return [column for column, _ in (*self.record, *self.totals)] + list(self.columns)

    def flat_rows(self) -> Iterator[Row]:
        """The table rows behind the record and totals values; when the table is empty, one row
        still carries the record (a customer without purchases is still exported)."""
        leading = [value for _, value in (*self.record, *self.totals)]
        if not leading:  # a report: its rows as they are, no copy per row
            yield from self.rows
            return
        empty = True
        for row in self.rows:
            empty = False
            yield [*leading, *row]
        if empty and leading:
            yield [*leading, *([None] * len(self.columns))]


@dataclass(frozen=True, slots=True)
class FileFormat:
    """A file type (shared with the API) and the function that writes it."""

    type: FileType
    render: Callable[[Document, BinaryIO], None]

    @property
    def extension(self) -> str:
        return self.type.extension

    @property
    def content_type(self) -> str:
        return self.type.content_type


def local_naive(moment: datetime, timezone: ZoneInfo) -> datetime:
    """The wall-clock time in the business timezone, as spreadsheets want it (no offset)."""
    if moment.tzinfo is None:
        raise ValueError("datetimes in files must be timezone-aware")
    return moment.astimezone(timezone).replace(tzinfo=None, microsecond=0)


def plain_text(value: Value, timezone: ZoneInfo) -> str:
    """The machine-readable text of a value: money as 1500000.00, dates as 2026-10-27 14:05:00
    in the business timezone."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return local_naive(value, timezone).isoformat(sep=" ")
    return str(value)


# Characters that make a spreadsheet read a cell as a formula (OWASP CSV injection; LF too).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
FORMULA_ESCAPE = "'"
# Left as they are although they start with + or -: harmless and common in this data.
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
_PHONE_NUMBER = re.compile(r"\+[0-9][0-9 ()-]{5,}[0-9]")


def _is_number_or_phone(text: str) -> bool:
    return bool(_PLAIN_NUMBER.fullmatch(text) or _PHONE_NUMBER.fullmatch(text))


def _looks_like_formula(text: str) -> bool:
    return text.startswith(FORMULA_TRIGGERS) and not _is_number_or_phone(text)


# Only text starting with one of these can need escaping: the common case is one set lookup.
_MAY_NEED_ESCAPING = frozenset((*FORMULA_TRIGGERS, FORMULA_ESCAPE))


def escape_formula(text: str) -> str:
    """Neutralise CSV formula injection: `=HYPERLINK(...)` becomes `'=HYPERLINK(...)`.

    Text that already looks escaped (quotes before a formula) gets one more quote, so that
    `unescape_formula` gives back exactly the original.
    """
    if not text or text[0] not in _MAY_NEED_ESCAPING:  # every report row calls this ~6 times
        return text
    if _looks_like_formula(text.lstrip(FORMULA_ESCAPE)):
        return FORMULA_ESCAPE + text
    return text


# The same two patterns for PostgreSQL, whose regular expressions cost about a microsecond a
# call (every seeded phone starts with `+`, so every row of a report runs one): the phone first,
# its `{5,}` as a length (a bounded repeat is twice as slow there), the number only if needed.
_PHONE_NUMBER_SQL = r"^\+[0-9][0-9 ()-]*[0-9]$"
_PHONE_MIN_LENGTH = 8  # + digit, 5 or more, digit
_PLAIN_NUMBER_SQL = f"^(?:{_PLAIN_NUMBER.pattern})$"
_ABOVE_EVERY_TRIGGER = max(ord(character) for character in _MAY_NEED_ESCAPING) + 1


def escape_formula_sql(text: ColumnElement[str]) -> ColumnElement[str]:
    """`escape_formula` as a PostgreSQL expression, for files whose fields PostgreSQL writes:
    the same constants, the same patterns (anchored, as `re.fullmatch`; the phone's restated
    above), the same cheap first-character test first. tests/worker/test_csv_records.py holds
    the two to the same answers."""
    stripped = func.ltrim(text, literal(FORMULA_ESCAPE))
    # ascii(): the first character's code, compared as integers (0 for empty text); names and
    # e-mails start with a letter, above every trigger: one comparison for them.
    first = func.ascii(text)
    looks_like_formula = and_(
        first < _ABOVE_EVERY_TRIGGER,
        first.in_([literal(ord(character)) for character in sorted(_MAY_NEED_ESCAPING)]),
        func.ascii(stripped).in_([literal(ord(character)) for character in FORMULA_TRIGGERS]),
        not_(
            and_(
                stripped.regexp_match(literal(_PHONE_NUMBER_SQL)),
                func.length(stripped) >= _PHONE_MIN_LENGTH,
            )
        ),
        not_(stripped.regexp_match(literal(_PLAIN_NUMBER_SQL))),
    )
    return case((looks_like_formula, literal(FORMULA_ESCAPE) + text), else_=text)


def unescape_formula(field: str) -> str:
    """The text a CSV field held before `escape_formula`."""
    if field.startswith(FORMULA_ESCAPE) and _looks_like_formula(field.lstrip(FORMULA_ESCAPE)):
        return field[1:]
    return field

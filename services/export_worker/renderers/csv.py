"""CSV: UTF-8 with a BOM (Excel then reads accents right), RFC 4180 quoting, one header row.

Every field but a number is quoted (SPEC §5): in a spreadsheet whose list separator is `;` (the
usual one in Colombia) a `;` or tab inside an unquoted value would start a new cell, and that
cell could begin with `=`. Counts and money stay bare, so they are read as numbers.

Two ways to the same bytes: `render` writes a `Document`'s rows with the csv module; for a file
of a million rows, `sql_record` has PostgreSQL write each record instead (the same quoting and
escaping as an SQL expression), and `write_records` only joins them after the header.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, LargeBinary, String, func, literal, literal_column

from services.export_worker.renderers import (
    Column,
    Document,
    FileFormat,
    Kind,
    Value,
    escape_formula,
    escape_formula_sql,
    plain_text,
)
from shared import file_formats

_CENTS = Decimal("0.01")
QUOTE = '"'
DELIMITER = ","
LINE_END = "\r\n"  # the csv module's default, RFC 4180's
# Records joined into one write: a few hundred kB, however many rows the file has.
RECORDS_PER_WRITE = 2000


def _field(value: Value, timezone: ZoneInfo) -> str | int | Decimal:
    # Only text can carry a formula; numbers and dates are printed by us.
    if isinstance(value, str):
        return escape_formula(value)
    if isinstance(value, int):
        return value  # written bare by QUOTE_NONNUMERIC
    if isinstance(value, Decimal):
        # Bare too, always with its cents: a quantized Decimal prints as 1500000.00, never 1.5E+6.
        return value.quantize(_CENTS)
    return plain_text(value, timezone)  # dates and empty values: quoted text


def _writer(text: io.TextIOBase) -> Any:
    # Comma, CRLF and quotes doubled inside quotes are RFC 4180; QUOTE_NONNUMERIC quotes every
    # field that is not an int or a Decimal.
    return csv.writer(text, quoting=csv.QUOTE_NONNUMERIC)


def render(document: Document, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    try:
        writer = _writer(text)
        writer.writerow([escape_formula(column.title) for column in document.flat_columns()])
        timezone = document.timezone
        writer.writerows([_field(value, timezone) for value in row] for row in document.flat_rows())
        text.flush()
    finally:
        text.detach()  # hand `out` back open: the caller owns it


def _sql_field(column: Column, value: ColumnElement[Any]) -> tuple[str, ColumnElement[Any]]:
    """One field as `render` writes it, as a `format()` placeholder and its value: text escaped,
    quotes doubled, quoted; numbers bare."""
    if column.kind is Kind.TEXT:
        escaped = escape_formula_sql(func.coalesce(value, literal("")))
        return f"{QUOTE}%s{QUOTE}", func.replace(escaped, literal(QUOTE), literal(QUOTE * 2))
    if column.kind is Kind.INTEGER:
        return "%s", value
    if column.kind is Kind.MONEY:
        return "%s", func.round(value, 2)  # always its cents, never an exponent
    # A date would need the business timezone's wall clock: no report has one yet.
    raise ValueError(f"no SQL record for a {column.kind.value} column ({column.title})")


def sql_record(fields: Sequence[tuple[Column, ColumnElement[Any]]]) -> ColumnElement[bytes]:
    """The CSV record of one row, CRLF included, as UTF-8 bytes computed by PostgreSQL: what
    `render` writes for the same values, byte for byte. One `format()` call joins the fields:
    PostgreSQL pays per function call, and a million rows make every call count."""
    placeholders, values = zip(
        *(_sql_field(column, value) for column, value in fields), strict=True
    )
    template = DELIMITER.join(placeholders) + LINE_END
    line = func.format(literal(template), *values, type_=String)
    return func.convert_to(line, literal_column("'UTF8'"), type_=LargeBinary)


def write_records(columns: Sequence[Column], records: Iterable[bytes], out: BinaryIO) -> None:
    """The BOM and header as `render` writes them, then the records PostgreSQL wrote
    (`sql_record`), joined a few thousand at a time."""
    header = io.StringIO(newline="")
    _writer(header).writerow([escape_formula(column.title) for column in columns])
    out.write(codecs.BOM_UTF8 + header.getvalue().encode("utf-8"))
    records = iter(records)
    while block := list(itertools.islice(records, RECORDS_PER_WRITE)):
        out.write(b"".join(block))


FILE_FORMAT = FileFormat(file_formats.CSV, render)

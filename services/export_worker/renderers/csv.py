"""CSV: UTF-8 with a BOM (Excel then reads accents right), RFC 4180 quoting, one header row.

Every field but a number is quoted (SPEC §5): in a spreadsheet whose list separator is `;` (the
usual one in Colombia) a `;` or tab inside an unquoted value would start a new cell, and that
cell could begin with `=`. Counts and money stay bare, so they are read as numbers.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import BinaryIO
from zoneinfo import ZoneInfo

from services.export_worker.renderers import Document, FileFormat, Value, escape_formula, plain_text
from shared import file_formats

_CENTS = Decimal("0.01")


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


def render(document: Document, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    try:
        # Comma, CRLF and quotes doubled inside quotes are RFC 4180; QUOTE_NONNUMERIC quotes
        # every field that is not an int or a Decimal.
        writer = csv.writer(text, quoting=csv.QUOTE_NONNUMERIC)
        writer.writerow([escape_formula(column.title) for column in document.flat_columns()])
        timezone = document.timezone
        writer.writerows([_field(value, timezone) for value in row] for row in document.flat_rows())
        text.flush()
    finally:
        text.detach()  # hand `out` back open: the caller owns it


FILE_FORMAT = FileFormat(file_formats.CSV, render)

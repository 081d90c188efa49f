"""CSV: UTF-8 with a BOM (Excel then reads accents right), RFC 4180 quoting, one header row."""

from __future__ import annotations

import csv
import io
from typing import BinaryIO
from zoneinfo import ZoneInfo

from services.export_worker.renderers import Document, FileFormat, Value, escape_formula, plain_text
from shared import file_formats


def _field(value: Value, timezone: ZoneInfo) -> str:
    # Only text can carry a formula; numbers and dates are printed by us.
    if isinstance(value, str):
        return escape_formula(value)
    return plain_text(value, timezone)


def render(document: Document, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8-sig", newline="")
    try:
        # The csv module's defaults are RFC 4180: comma, CRLF, quotes doubled inside quotes.
        writer = csv.writer(text)
        writer.writerow([escape_formula(column.title) for column in document.flat_columns()])
        timezone = document.timezone
        writer.writerows([_field(value, timezone) for value in row] for row in document.flat_rows())
        text.flush()
    finally:
        text.detach()  # hand `out` back open: the caller owns it


FILE_FORMAT = FileFormat(file_formats.CSV, render)

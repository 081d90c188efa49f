"""TXT: a fixed-width report for people to read: title, parameters, the record as a block, the
table in aligned columns, then the totals. Money is written the Colombian way (1.500.000,00)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from decimal import Decimal
from typing import BinaryIO, TextIO
from zoneinfo import ZoneInfo

from services.export_worker.renderers import (
    Column,
    Document,
    FileFormat,
    Kind,
    Value,
    plain_text,
)
from shared import file_formats

COLUMN_GAP = "  "


def _readable(value: Value, timezone: ZoneInfo) -> str:
    if isinstance(value, Decimal):
        # 1,500,000.00 -> 1.500.000,00
        return f"{value:,.2f}".translate(str.maketrans(",.", ".,"))
    if isinstance(value, str):
        return " ".join(value.split())  # a newline or tab would break the columns
    return plain_text(value, timezone)


def _fit(text: str, column: Column, width: int, last: bool) -> str:
    # Never cut: a value wider than its column pushes the rest of its line rather than lose
    # characters (an invoice number must stay whole).
    if last:
        return text  # nothing to align after it
    return text.rjust(width) if column.kind in {Kind.INTEGER, Kind.MONEY} else text.ljust(width)


def _write_block(
    out: TextIO, title: str, entries: Sequence[tuple[str, Value]], timezone: ZoneInfo
) -> None:
    if not entries:
        return
    label_width = max(len(label) for label, _ in entries)
    out.write(f"{title}\n")
    for label, value in entries:
        out.write(f"  {label.ljust(label_width)} : {_readable(value, timezone)}\n")
    out.write("\n")


def _write_table(out: TextIO, document: Document) -> int:
    columns = document.columns
    widths = [max(column.width, len(column.title)) for column in columns]
    last = len(columns) - 1

    def line(texts: Sequence[str]) -> str:
        cells = (
            _fit(text, column, width, index == last)
            for index, (text, column, width) in enumerate(zip(texts, columns, widths, strict=True))
        )
        return COLUMN_GAP.join(cells).rstrip() + "\n"

    out.write(line([column.title for column in columns]))
    out.write(COLUMN_GAP.join("-" * width for width in widths) + "\n")
    count = 0
    for row in document.rows:
        out.write(line([_readable(value, document.timezone) for value in row]))
        count += 1
    return count


def render(document: Document, out: BinaryIO) -> None:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="\n")
    try:
        timezone = document.timezone
        generated = plain_text(document.generated_at, timezone)
        text.write(f"{document.title.upper()}\n{'=' * len(document.title)}\n")
        text.write(f"Generado: {generated} ({timezone.key})\n\n")
        _write_block(text, "Parámetros", document.parameters, timezone)
        record = [(column.title, value) for column, value in document.record]
        _write_block(text, document.record_title, record, timezone)
        count = _write_table(text, document)
        text.write(f"({count} filas)\n\n" if count != 1 else "(1 fila)\n\n")
        totals = [(column.title, value) for column, value in document.totals]
        _write_block(text, "Totales", totals, timezone)
        text.flush()
    finally:
        text.detach()  # hand `out` back open: the caller owns it


FILE_FORMAT = FileFormat(file_formats.TXT, render)

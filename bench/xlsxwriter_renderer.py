"""The XlsxWriter renderer the worker used until issue 16 (constant-memory mode), kept as the
baseline of `make bench ONLY=xlsx`: rows must be written in order, and memory stays flat.

Text is always written with `write_string`: a cell that begins with `=` stays text, never a
formula (the workbook is also told not to turn strings into formulas, numbers or links).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import BinaryIO
from zoneinfo import ZoneInfo

import xlsxwriter
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from services.export_worker.renderers import Column, Document, FileFormat, Kind, Value, local_naive
from shared import file_formats

MONEY_FORMAT = '"$" #,##0.00'
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
MAX_ROWS = 1_048_576  # per sheet, header included: Excel's own limit
PARAMETERS_SHEET = "Parámetros"

CellWriter = Callable[[Worksheet, int, int, Value], None]


class TooManyRows(ValueError):
    """More rows than an Excel sheet holds; the CSV format has no such limit."""


class _Styles:
    def __init__(self, workbook: Workbook, timezone: ZoneInfo) -> None:
        self.timezone = timezone
        self.header = workbook.add_format(
            {"bold": True, "bg_color": "#DDEBF7", "bottom": 1, "text_wrap": True}
        )
        self.money = workbook.add_format({"num_format": MONEY_FORMAT})
        self.datetime = workbook.add_format({"num_format": DATETIME_FORMAT})

    def writer(self, kind: Kind) -> CellWriter:
        return {
            Kind.TEXT: self._text,
            Kind.INTEGER: self._integer,
            Kind.MONEY: self._money,
            Kind.DATETIME: self._datetime,
        }[kind]

    def writer_for(self, value: Value) -> CellWriter:
        """For a parameter, whose kind is its Python type."""
        if isinstance(value, Decimal):
            return self._money
        if isinstance(value, datetime):
            return self._datetime
        if isinstance(value, int):
            return self._integer
        return self._text

    # A None leaves the cell blank.
    def _text(self, sheet: Worksheet, row: int, col: int, value: Value) -> None:
        if value is not None:
            sheet.write_string(row, col, str(value))

    def _integer(self, sheet: Worksheet, row: int, col: int, value: Value) -> None:
        if isinstance(value, int):
            sheet.write_number(row, col, value)

    def _money(self, sheet: Worksheet, row: int, col: int, value: Value) -> None:
        if isinstance(value, int | Decimal):
            # numeric(15,2) has at most 15 significant digits: exact as a double.
            sheet.write_number(row, col, float(value), self.money)

    def _datetime(self, sheet: Worksheet, row: int, col: int, value: Value) -> None:
        if isinstance(value, datetime):
            sheet.write_datetime(row, col, local_naive(value, self.timezone), self.datetime)


def _write_header(
    sheet: Worksheet, columns: Sequence[Column], styles: _Styles, *, freeze: bool = True
) -> None:
    for index, column in enumerate(columns):
        sheet.set_column(index, index, column.width)
        sheet.write_string(0, index, column.title, styles.header)
    if freeze:
        sheet.freeze_panes(1, 0)


def _write_table(sheet: Worksheet, document: Document, styles: _Styles) -> None:
    columns = document.flat_columns()
    _write_header(sheet, columns, styles)
    writers = [(index, styles.writer(column.kind)) for index, column in enumerate(columns)]
    last_row = 0
    for last_row, row in enumerate(document.flat_rows(), start=1):
        if last_row >= MAX_ROWS:
            raise TooManyRows(f"more than {MAX_ROWS - 1} rows do not fit in an Excel sheet")
        for (index, write), value in zip(writers, row, strict=True):
            write(sheet, last_row, index, value)
    sheet.autofilter(0, 0, last_row, len(columns) - 1)


def _write_parameters(sheet: Worksheet, document: Document, styles: _Styles) -> None:
    columns = [Column("Parámetro", width=34), Column("Valor", width=40)]
    _write_header(sheet, columns, styles, freeze=False)
    entries: list[tuple[str, Value]] = [
        *document.parameters,
        ("Generado", document.generated_at),
        ("Zona horaria de las fechas", document.timezone.key),
    ]
    for row, (label, value) in enumerate(entries, start=1):
        sheet.write_string(row, 0, label)
        styles.writer_for(value)(sheet, row, 1, value)


def render(document: Document, out: BinaryIO) -> None:
    workbook = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    styles = _Styles(workbook, document.timezone)
    table = workbook.add_worksheet(document.sheet_name)
    parameters = workbook.add_worksheet(PARAMETERS_SHEET)
    # Each sheet streams to its own temporary file, so one may be finished after the other.
    _write_table(table, document, styles)
    _write_parameters(parameters, document, styles)
    # Closed only on success: a half-written workbook is thrown away by the caller anyway.
    workbook.close()


FILE_FORMAT = FileFormat(file_formats.XLSX, render)

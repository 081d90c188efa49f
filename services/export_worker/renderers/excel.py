"""Excel (xlsx) with rust_xlsxwriter (through the rustpy-xlsxwriter binding) in constant-memory
mode: each row goes to a temporary file as soon as it is written, so rows stream in order and
memory stays flat however many there are. About 6× the rows/s of XlsxWriter's own constant-memory
mode on the same rows (`make bench ONLY=xlsx`).

Text cells are always text: the binding never turns a string into a formula, number or link.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import rustpy_xlsxwriter as xlsx

from services.export_worker.renderers import Column, Document, FileFormat, Kind, Value, local_naive
from shared import file_formats

MONEY_FORMAT = '"$" #,##0.00'
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
MAX_ROWS = 1_048_576  # per sheet, header included: Excel's own limit
PARAMETERS_SHEET = "Parámetros"
PARAMETER_COLUMNS = [Column("Parámetro", width=34), Column("Valor", width=40)]

CellValue = str | float | datetime | None
Converter = Callable[[Value], CellValue]


class TooManyRows(ValueError):
    """More rows than an Excel sheet holds; the CSV format has no such limit."""


def _header_format() -> xlsx.Format:
    return (
        xlsx.Format()
        .set_bold()
        .set_background_color("#DDEBF7")
        .set_border_bottom("thin")
        .set_text_wrap()
    )


def _money_format() -> xlsx.Format:
    return xlsx.Format().set_num_format(MONEY_FORMAT)


def _converter(kind: Kind, timezone: ZoneInfo) -> Converter:
    """What the binding is given for a value of `kind`; a None (or a value of another type)
    leaves the cell blank."""

    def text(value: Value) -> CellValue:
        return None if value is None else str(value)

    def number(value: Value) -> CellValue:
        # numeric(15,2) has at most 15 significant digits: exact as a double.
        return float(value) if isinstance(value, int | Decimal) else None

    def moment(value: Value) -> CellValue:
        return local_naive(value, timezone) if isinstance(value, datetime) else None

    return {Kind.TEXT: text, Kind.INTEGER: number, Kind.MONEY: number, Kind.DATETIME: moment}[kind]


def _parameter_kind(value: Value) -> Kind:
    if isinstance(value, Decimal):
        return Kind.MONEY
    if isinstance(value, datetime):
        return Kind.DATETIME
    if isinstance(value, int):
        return Kind.INTEGER
    return Kind.TEXT


def _records(document: Document, columns: Sequence[Column]) -> Iterator[dict[str, CellValue]]:
    titles = [column.title for column in columns]
    if len(set(titles)) != len(titles):
        raise ValueError("column titles must be unique: each row is a mapping by title")
    # Only the cells that need it are converted: a str in a text column (nearly every text
    # cell) is passed as it is.
    numbers_and_dates = [
        (index, _converter(column.kind, document.timezone))
        for index, column in enumerate(columns)
        if column.kind is not Kind.TEXT
    ]
    texts = [index for index, column in enumerate(columns) if column.kind is Kind.TEXT]
    count = 0
    for count, row in enumerate(document.flat_rows(), start=1):
        if count >= MAX_ROWS:
            raise TooManyRows(f"more than {MAX_ROWS - 1} rows do not fit in an Excel sheet")
        values: list[Any] = list(row)  # converted in place, to CellValue
        for index, convert in numbers_and_dates:
            values[index] = convert(values[index])
        for index in texts:
            value = values[index]
            if value is not None and type(value) is not str:
                values[index] = str(value)
        yield dict(zip(titles, values, strict=True))
    if count == 0:
        # The binding takes the header from the first record: a record of blanks writes the
        # header alone (no cell is written for a None; the autofilter then spans A1 to row 2).
        yield dict.fromkeys(titles)


def _parameters(document: Document) -> tuple[list[dict[str, CellValue]], dict[int, Any]]:
    """The parameters sheet's rows, and the money format for each row holding an amount."""
    entries: list[tuple[str, Value]] = [
        *document.parameters,
        ("Generado", document.generated_at),
        ("Zona horaria de las fechas", document.timezone.key),
    ]
    label, valor = (column.title for column in PARAMETER_COLUMNS)
    rows: list[dict[str, CellValue]] = []
    money_rows: dict[int, Any] = {}
    for row, (name, value) in enumerate(entries, start=1):
        kind = _parameter_kind(value)
        rows.append({label: name, valor: _converter(kind, document.timezone)(value)})
        if kind is Kind.MONEY:
            money_rows[row] = _money_format()
    return rows, money_rows


def render(document: Document, out: BinaryIO) -> None:
    columns = document.flat_columns()
    parameters, money_rows = _parameters(document)
    money = {column.title: _money_format() for column in columns if column.kind is Kind.MONEY}
    table, sheet = document.sheet_name, PARAMETERS_SHEET
    # Written to a path, not to `out`: given a buffer, the binding builds the whole zip in
    # memory first. The copy is one sequential read of the finished file.
    with tempfile.TemporaryDirectory(prefix="xlsx-") as directory:
        path = Path(directory) / "file.xlsx"
        xlsx.write_worksheets(
            [(table, _records(document, columns)), (sheet, parameters)],
            str(path),
            freeze_panes={table: {"row": 1, "col": 0}},
            datetime_format=DATETIME_FORMAT,
            column_widths={
                table: [column.width for column in columns],
                sheet: [column.width for column in PARAMETER_COLUMNS],
            },
            column_formats={table: money},
            header_format={table: _header_format(), sheet: _header_format()},
            row_formats={sheet: money_rows},
            autofilter={table: True},
        )
        with path.open("rb") as finished:
            shutil.copyfileobj(finished, out)


FILE_FORMAT = FileFormat(file_formats.XLSX, render)

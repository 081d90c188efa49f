"""Faster xlsx writers against today's renderer (issue 16, item 3): same rows, same run.

Every candidate writes the loyalty report's shape (six text columns, purchases, total in COP)
plus the parameters sheet, in a fresh spawned process so that each peak RSS is its own. Each is
run at a tenth of the rows and at all of them: flat memory means the two peaks are close. Each is
also read back with openpyxl on a small file, checking every SPEC §5 rule: styled frozen header,
autofilter, COP number format on real numbers, a real date, the widths, the parameters sheet, and
text that looks like a formula stored as text.

    .venv/bin/python -m bench.xlsx_writers --rows 200000   # by hand; `make bench ONLY=xlsx`
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench import xlsxwriter_renderer
from bench.report import Figure, Target
from services.export_worker import exports
from services.export_worker.renderers import Document, Row, excel

TIMEZONE = ZoneInfo("America/Bogota")
GENERATED_AT = datetime(2026, 11, 2, 14, 5, tzinfo=UTC)
FORMULA_TEXT = '=HYPERLINK("http://example.com","x")'  # the name on the first data row
COLUMNS = exports.REPORTE_COLUMNS
TITLES = [column.title for column in COLUMNS]
WIDTHS = [float(column.width) for column in COLUMNS]
PARAMETERS: list[tuple[str, Any]] = [
    ("Desde (incluido)", datetime(2026, 10, 1, tzinfo=UTC)),
    ("Monto mínimo (el total debe superarlo)", Decimal("5000000")),
]
CHECK_ROWS = 50
DEFAULT_ROWS = 200_000


def report_rows(count: int) -> Iterator[Row]:
    for number in range(count):
        name = FORMULA_TEXT if number == 0 else f"Nombre {number}"
        yield (
            "CC",
            str(1_000_000_000 + number),
            name,
            f"Apellido Núñez {number}",
            f"cliente{number}@example.com",
            f"+57 300 {number:07d}",
            number % 17 + 1,
            Decimal("6000000.00") + number,
        )


def _parameter_entries() -> list[tuple[str, Any]]:
    return [*PARAMETERS, ("Generado", GENERATED_AT)]


# Candidates: each writes `count` report rows to `path`.


def _document(count: int) -> Document:
    return Document(
        "Reporte", "Reporte", COLUMNS, report_rows(count), PARAMETERS, GENERATED_AT, TIMEZONE
    )


def previous(path: Path, count: int) -> None:
    """The XlsxWriter renderer the worker used before (bench/xlsxwriter_renderer.py)."""
    with path.open("wb") as out:
        xlsxwriter_renderer.render(_document(count), out)


def today(path: Path, count: int) -> None:
    """services/export_worker/renderers/excel.py as it is."""
    with path.open("wb") as out:
        excel.render(_document(count), out)


def pyexcelerate(path: Path, count: int) -> None:
    """PyExcelerate: the whole sheet is built in memory, then written."""
    # Not a dependency: measured when installed (`uv pip install pyexcelerate`).
    from pyexcelerate import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        Color,
        Fill,
        Font,
        Format,
        Panes,
        Style,
        Workbook,
    )

    workbook = Workbook()
    money = Style(format=Format(excel.MONEY_FORMAT))
    rows = [[*row[:7], float(row[7])] for row in report_rows(count)]  # type: ignore[arg-type]
    sheet = workbook.new_sheet("Reporte", data=[TITLES, *rows])
    sheet.set_row_style(
        1, Style(font=Font(bold=True), fill=Fill(background=Color(0xDD, 0xEB, 0xF7)))
    )
    for index, width in enumerate(WIDTHS, start=1):
        sheet.set_col_style(index, Style(size=width))
    sheet.set_col_style(8, Style(size=WIDTHS[7], format=money.format))
    sheet.panes = Panes(y=1)
    sheet.auto_filter = True
    entries = [
        (
            label,
            value.astimezone(TIMEZONE).replace(tzinfo=None)
            if isinstance(value, datetime)
            else value,
        )
        for label, value in _parameter_entries()
    ]
    workbook.new_sheet(excel.PARAMETERS_SHEET, data=[["Parámetro", "Valor"], *entries])
    workbook.save(str(path))


def rustpy_xlsxwriter(path: Path, count: int) -> None:
    """rustpy-xlsxwriter: rust_xlsxwriter through PyO3, rows as a generator of dicts."""
    import rustpy_xlsxwriter as rx

    header = rx.Format().set_bold().set_background_color("#DDEBF7")
    money = rx.Format().set_num_format(excel.MONEY_FORMAT)
    records = (
        dict(zip(TITLES, [*row[:7], float(row[7])], strict=True))  # type: ignore[arg-type]
        for row in report_rows(count)
    )
    parameters = (
        {"Parámetro": label, "Valor": value.astimezone(TIMEZONE).replace(tzinfo=None)}
        if isinstance(value, datetime)
        else {"Parámetro": label, "Valor": float(value)}
        if isinstance(value, Decimal)
        else {"Parámetro": label, "Valor": value}
        for label, value in _parameter_entries()
    )
    rx.write_worksheets(
        [("Reporte", records), (excel.PARAMETERS_SHEET, parameters)],
        str(path),
        freeze_panes={"Reporte": {"row": 1, "col": 0}},
        datetime_format=excel.DATETIME_FORMAT,
        column_widths={"Reporte": WIDTHS},
        column_formats={"Reporte": {TITLES[7]: money}},
        header_format={"Reporte": header, excel.PARAMETERS_SHEET: header},
        autofilter={"Reporte": True},
    )


def openpyxl_write_only(path: Path, count: int) -> None:
    """openpyxl in write-only mode: streams rows, pure Python."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Reporte")
    for letter, width in zip("ABCDEFGH", WIDTHS, strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:H{count + 1}"
    fill = PatternFill("solid", fgColor="DDEBF7")
    titles = []
    for title in TITLES:
        cell = WriteOnlyCell(sheet, title)
        cell.font, cell.fill = Font(bold=True), fill
        titles.append(cell)
    sheet.append(titles)
    for row in report_rows(count):
        total = WriteOnlyCell(sheet, float(row[7]))  # type: ignore[arg-type]
        total.number_format = excel.MONEY_FORMAT
        texts = [WriteOnlyCell(sheet, value) for value in row[:6]]
        for text in texts:
            text.data_type = "s"  # never a formula
        sheet.append([*texts, row[6], total])
    parameters = workbook.create_sheet(excel.PARAMETERS_SHEET)
    parameters.append(["Parámetro", "Valor"])
    for label, value in _parameter_entries():
        if isinstance(value, datetime):
            value = value.astimezone(TIMEZONE).replace(tzinfo=None)
        parameters.append([label, value])
    workbook.save(str(path))


CANDIDATES: dict[str, Callable[[Path, int], None]] = {
    "xlsxwriter (previous renderer)": previous,
    "renderer (today's excel.py)": today,
    "pyexcelerate": pyexcelerate,
    "rustpy-xlsxwriter": rustpy_xlsxwriter,
    "openpyxl write-only": openpyxl_write_only,
}
BASELINE = "xlsxwriter (previous renderer)"
TODAY = "renderer (today's excel.py)"
SPEEDUP_TARGET = 3.0
RSS_GROWTH_MB = 16  # from a tenth of the rows to all of them: flat


# SPEC §5, read back.


def broken_rules(path: Path) -> list[str]:
    """The SPEC §5 rules the file at `path` breaks (empty: every one kept)."""
    from openpyxl import load_workbook

    workbook = load_workbook(path)
    broken: list[str] = []
    sheet = workbook.worksheets[0]
    header = sheet["A1"]
    if not (header.font.bold and str(header.fill.fgColor.rgb).upper().endswith("DDEBF7")):
        broken.append("styled header")
    if sheet.freeze_panes != "A2":
        broken.append("frozen header")
    if not (sheet.auto_filter.ref or "").startswith("A1:H"):
        broken.append("autofilter")
    total = sheet["H2"]
    if not (isinstance(total.value, int | float) and total.number_format == excel.MONEY_FORMAT):
        broken.append("COP number format")
    if not isinstance(sheet["G2"].value, int | float):
        broken.append("number of purchases as a number")
    if any(abs(got - want) > 1 for got, want in zip(_widths(sheet), WIDTHS, strict=True)):
        broken.append("widths")
    name = sheet["C2"]
    if name.data_type != "s" or name.value != FORMULA_TEXT:
        broken.append("text never a formula")
    if excel.PARAMETERS_SHEET not in workbook.sheetnames:
        broken.append("parameters sheet")
    else:
        dates = [
            cell
            for cell in workbook[excel.PARAMETERS_SHEET]["B"]
            if isinstance(cell.value, datetime)
        ]
        if not dates or not dates[0].is_date:
            broken.append("real dates")
    return broken


def _widths(sheet: Any) -> list[float]:
    """Column widths by position (openpyxl groups equal neighbours into one min..max entry)."""
    widths = [0.0] * len(WIDTHS)
    for dimension in sheet.column_dimensions.values():
        for index in range(dimension.min, min(dimension.max, len(WIDTHS)) + 1):
            widths[index - 1] = dimension.width or 0.0
    return widths


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    error: str = ""


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec, so a
    spawned child would report its parent's peak when the parent is the bigger one."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(name: str, count: int, results: Any) -> None:
    try:
        with tempfile.TemporaryDirectory() as directory:
            started = time.perf_counter()
            CANDIDATES[name](Path(directory) / "out.xlsx", count)
            seconds = time.perf_counter() - started
        peak = _peak_rss_mb()
        results.put(Run(seconds, peak))
    except Exception as error:  # reported beside the others, never fatal
        results.put(Run(0, 0, f"{type(error).__name__}: {error}"))


def run_in_child(name: str, count: int) -> Run:
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    process = spawn.Process(target=_child, args=(name, count, results))
    process.start()
    run: Run = results.get()
    process.join()
    return run


@dataclass(frozen=True)
class Measured:
    name: str
    rows: int
    small: Run  # at a tenth of the rows
    full: Run
    broken: list[str]

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.full.seconds if self.full.seconds else 0.0

    @property
    def rss_growth_mb(self) -> float:
        return self.full.peak_rss_mb - self.small.peak_rss_mb


def _check(name: str) -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "check.xlsx"
        try:
            CANDIDATES[name](path, CHECK_ROWS)
        except Exception as error:
            return [f"fails: {type(error).__name__}: {error}"]
        try:
            return broken_rules(path)
        except Exception as error:  # e.g. a file Excel and openpyxl cannot open
            return [f"unreadable: {type(error).__name__}: {error}"]


def measure(name: str, rows: int) -> Measured:
    small = run_in_child(name, rows // 10)
    full = run_in_child(name, rows)
    return Measured(name, rows, small, full, _check(name))


def available(name: str) -> bool:
    module = {"pyexcelerate": "pyexcelerate", "rustpy-xlsxwriter": "rustpy_xlsxwriter"}.get(name)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def measure_all(rows: int) -> list[Measured]:
    return [measure(name, rows) for name in CANDIDATES if available(name)]


def describe(measured: list[Measured]) -> str:
    baseline = next(m for m in measured if m.name == BASELINE).rows_per_second
    lines = ["| writer | rows/s | × XlsxWriter | peak RSS MB (1/10 → all) | SPEC §5 broken |"]
    lines.append("|---|---|---|---|---|")
    for m in measured:
        error = m.full.error or m.small.error
        rate = f"{m.rows_per_second:,.0f}" if not error else f"failed: {error}"
        lines.append(
            f"| {m.name} | {rate} | {m.rows_per_second / baseline:.2f} | "
            f"{m.small.peak_rss_mb:.0f} → {m.full.peak_rss_mb:.0f} | "
            f"{', '.join(m.broken) or 'none'} |"
        )
    return "\n".join(lines)


def figures(rows: int = DEFAULT_ROWS) -> list[Figure]:
    """Each writer's rows/s beside the XlsxWriter renderer's, measured in the same run; its
    memory growth from a tenth of the rows to all of them; the SPEC §5 rules it breaks."""
    measured = measure_all(rows)
    baseline = next(m for m in measured if m.name == BASELINE)
    result: list[Figure] = []
    for m in measured:
        if m.name == BASELINE:
            continue
        key = m.name.split(" ")[0].replace("-", "_")
        broken = ", ".join(m.broken) or "none"
        failed = m.full.error or m.small.error
        result.append(
            Figure(
                f"xlsx_{key}_rows_per_second",
                f"xlsx, {rows:,} report rows: {m.name}",
                "rows/s",
                None if failed else m.rows_per_second,
                baseline.rows_per_second,
                "XlsxWriter constant-memory (the previous renderer), same rows",
                Target(f"≥ {SPEEDUP_TARGET:g}× XlsxWriter", ratio_at_least=SPEEDUP_TARGET)
                if m.name == TODAY
                else None,
                f"failed: {failed}" if failed else f"SPEC §5 rules broken: {broken}",
            )
        )
        result.append(
            Figure(
                f"xlsx_{key}_rss_growth",
                f"xlsx: {m.name}, peak RSS growth from {rows // 10:,} to {rows:,} rows",
                "MB",
                m.rss_growth_mb,
                baseline.rss_growth_mb,
                "XlsxWriter's own growth",
                Target(f"≤ {RSS_GROWTH_MB} MB", at_most=RSS_GROWTH_MB) if m.name == TODAY else None,
                f"peak {m.small.peak_rss_mb:.0f} → {m.full.peak_rss_mb:.0f} MB, each run in its "
                "own spawned process",
            )
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    args = parser.parse_args()
    print(describe(measure_all(args.rows)))


if __name__ == "__main__":
    main()

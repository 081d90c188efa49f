"""The loyalty report: its rule at the edges, its order, its files, and its query plan.

Other tests create completed purchases in the same database, so each test here looks at a
window of its own (tests.factories.report_window), in which nothing else buys.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from sqlalchemy import Engine, select

from services.export_worker import exports, queries
from shared.models import Cliente
from tests.factories import BUSINESS_TZ, ReportWindow, make_cliente, make_compra, report_window

GENERATED_AT = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
MINIMO = Decimal("5000000.00")
HEADER = [
    "Tipo de documento",
    "Número de documento",
    "Nombre",
    "Apellido",
    "Correo",
    "Teléfono",
    "Número de compras",
    "Monto total",
]


@pytest.fixture
def window() -> ReportWindow:
    return report_window()


def report(
    engine: Engine,
    window: ReportWindow,
    formato: str = "csv",
    monto_minimo: Decimal = MINIMO,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[exports.RenderedFile, bytes]:
    out = io.BytesIO()
    with engine.connect() as connection:
        rendered = exports.render_reporte_fidelizacion(
            connection,
            desde=window.desde,
            hasta=window.hasta,
            monto_minimo=monto_minimo,
            formato=formato,
            out=out,
            generated_at=GENERATED_AT,
            on_progress=on_progress,
        )
    return rendered, out.getvalue()


def csv_report(engine: Engine, window: ReportWindow) -> list[list[str]]:
    _, content = report(engine, window)
    assert content.startswith(b"\xef\xbb\xbf")
    header, *rows = csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""))
    assert header == HEADER
    return rows


def numeros(rows: list[list[str]]) -> list[str]:
    return [row[1] for row in rows]


def customer_spending(
    engine: Engine, *amounts: str, when: datetime, estado: str = "completada", **cliente: Any
) -> Cliente:
    customer = make_cliente(engine, **cliente)
    for amount in amounts:
        make_compra(engine, customer, monto=amount, fecha_compra=when, estado=estado)
    return customer


def test_the_total_must_be_more_than_the_minimum(engine: Engine, window: ReportWindow) -> None:
    exactly = customer_spending(engine, "5000000.00", when=window.middle)
    one_cent_more = customer_spending(engine, "5000000.01", when=window.middle)
    two_purchases = customer_spending(engine, "3000000.00", "2000000.01", when=window.middle)

    rows = csv_report(engine, window)

    assert exactly.numero_documento not in numeros(rows)
    by_numero = {row[1]: row for row in rows}
    assert by_numero[one_cent_more.numero_documento][6:] == ["1", "5000000.01"]
    assert by_numero[two_purchases.numero_documento][6:] == ["2", "5000000.01"]
    assert len(rows) == 2


def test_only_completed_purchases_count(engine: Engine, window: ReportWindow) -> None:
    customer = customer_spending(engine, "4000000.00", when=window.middle)
    make_compra(engine, customer, monto="2000000", estado="pendiente", fecha_compra=window.middle)
    make_compra(engine, customer, monto="2000000", estado="cancelada", fecha_compra=window.middle)
    customer_spending(engine, "9000000", when=window.middle, estado="pendiente")
    customer_spending(engine, "9000000", when=window.middle, estado="cancelada")

    assert csv_report(engine, window) == []


def test_desde_is_inclusive_and_hasta_exclusive(engine: Engine, window: ReportWindow) -> None:
    at_desde = customer_spending(engine, "5000001", when=window.desde)
    just_before_hasta = customer_spending(
        engine, "5000002", when=window.hasta - timedelta(microseconds=1)
    )
    at_hasta = customer_spending(engine, "5000003", when=window.hasta)
    just_before_desde = customer_spending(
        engine, "5000004", when=window.desde - timedelta(microseconds=1)
    )
    # Half inside the window, half out: only the inside half counts, and it is not enough.
    straddling = customer_spending(engine, "3000000", when=window.middle)
    make_compra(engine, straddling, monto="3000000", fecha_compra=window.hasta)

    rows = csv_report(engine, window)

    assert numeros(rows) == [just_before_hasta.numero_documento, at_desde.numero_documento]
    outside = {at_hasta, just_before_desde, straddling}
    assert not {customer.numero_documento for customer in outside} & set(numeros(rows))


def test_inactive_customers_are_left_out(engine: Engine, window: ReportWindow) -> None:
    customer_spending(engine, "90000000", when=window.middle, activo=False)
    active = customer_spending(engine, "6000000", when=window.middle)
    assert numeros(csv_report(engine, window)) == [active.numero_documento]


def test_biggest_total_first_then_by_id(engine: Engine, window: ReportWindow) -> None:
    seven = customer_spending(engine, "7000000", when=window.middle)
    first_eight = customer_spending(engine, "4000000", "4000000", when=window.middle)
    nine = customer_spending(engine, "9000000", when=window.middle)
    second_eight = customer_spending(engine, "8000000", when=window.middle)
    six = customer_spending(engine, "6000000", when=window.middle)

    rows = csv_report(engine, window)

    expected = [nine, first_eight, second_eight, seven, six]
    assert numeros(rows) == [customer.numero_documento for customer in expected]
    assert [row[7] for row in rows] == [
        "9000000.00",
        "8000000.00",
        "8000000.00",
        "7000000.00",
        "6000000.00",
    ]


def test_csv_row_content(engine: Engine, window: ReportWindow) -> None:
    customer = customer_spending(
        engine,
        "5500000.50",
        when=window.middle,
        codigo="CE",
        nombre="=cmd|' /C calc'!A0",
        apellido="Ñandú",
        telefono="+57 (300) 123-4567",
    )
    rendered, content = report(engine, window)
    assert rendered.row_count == 1
    assert rendered.filename == (
        f"reporte_fidelizacion_{window.desde.date()}_{window.hasta.date()}.csv"
    )
    assert rendered.content_type == "text/csv; charset=utf-8"
    _, row = csv.reader(io.StringIO(content.decode("utf-8-sig"), newline=""))
    assert row == [
        "CE",
        customer.numero_documento,
        "'=cmd|' /C calc'!A0",
        "Ñandú",
        customer.correo,
        "+57 (300) 123-4567",
        "1",
        "5500000.50",
    ]


def test_excel_report(engine: Engine, window: ReportWindow) -> None:
    big = customer_spending(engine, "12000000", when=window.middle, nombre="@SUM(A1)")
    small = customer_spending(engine, "5000000.01", when=window.middle)
    rendered, content = report(engine, window, formato="excel")

    assert rendered.row_count == 2
    assert rendered.filename == (
        f"reporte_fidelizacion_{window.desde.date()}_{window.hasta.date()}.xlsx"
    )
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    assert workbook.sheetnames == ["Reporte", "Parámetros"]
    sheet = workbook["Reporte"]
    assert [cell.value for cell in sheet[1]] == HEADER
    assert all(cell.font.b for cell in sheet[1])
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:H3"
    assert [row[1].value for row in sheet.iter_rows(min_row=2)] == [
        big.numero_documento,
        small.numero_documento,
    ]
    assert sheet["C2"].value == "@SUM(A1)" and sheet["C2"].data_type == "s"
    assert sheet["G2"].value == 1
    assert sheet["H2"].value == 12000000 and sheet["H2"].number_format == '"$" #,##0.00'
    assert sheet["H3"].value == pytest.approx(5000000.01)

    parameters = {row[0].value: row[1] for row in workbook["Parámetros"].iter_rows(min_row=2)}
    assert parameters["Desde (incluido)"].value == window.desde.replace(tzinfo=None)
    assert parameters["Hasta (excluido)"].value == window.hasta.replace(tzinfo=None)
    assert parameters["Desde (incluido)"].is_date
    minimo = parameters["Monto mínimo (el total debe superarlo)"]
    assert minimo.value == 5000000 and minimo.number_format == '"$" #,##0.00'
    assert parameters["Formato"].value == "excel"
    assert parameters["Generado"].value == GENERATED_AT.astimezone(BUSINESS_TZ).replace(tzinfo=None)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        for name in archive.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in archive.read(name)


@pytest.mark.parametrize("formato", ["csv", "excel"])
def test_an_empty_report_is_a_file_with_its_header(
    engine: Engine, window: ReportWindow, formato: str
) -> None:
    rendered, content = report(engine, window, formato=formato)
    assert rendered.row_count == 0
    if formato == "csv":
        # Every text field is quoted (SPEC §5), the header's too.
        assert content.decode("utf-8-sig") == ",".join(f'"{title}"' for title in HEADER) + "\r\n"
        return
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    sheet = workbook["Reporte"]
    assert [cell.value for cell in sheet[1]] == HEADER
    # rust_xlsxwriter writes the header from a record of blanks: its filter spans one empty row.
    assert sheet.max_row == 1 and sheet.auto_filter.ref == "A1:H2"
    assert workbook["Parámetros"].max_row > 1


def test_progress_is_reported_now_and_then(engine: Engine, window: ReportWindow) -> None:
    for amount in range(25):
        customer_spending(engine, str(6000000 + amount), when=window.middle)
    progress: list[int] = []

    rendered, _ = report(engine, window, on_progress=progress.append)

    assert rendered.row_count == 25
    assert progress[0] == 0 and progress[-1] == 100
    assert progress == sorted(progress)
    assert 3 < len(progress) < rendered.row_count  # not once per row


class Stopped(Exception):
    pass


@pytest.mark.timeout(60)
def test_a_report_stopped_midway_frees_its_connection_at_once(
    engine: Engine, window: ReportWindow
) -> None:
    """A canceled job stops its report in the middle of the rows: the unfinished stream must let
    go of the connection, or the rollback that follows would wait on it for ever."""
    for amount in range(25):
        customer_spending(engine, str(6000000 + amount), when=window.middle)

    def stop_after_the_first_step(percent: int) -> None:
        if percent > 0:
            raise Stopped

    with engine.connect() as connection:
        with pytest.raises(Stopped), connection.begin():
            exports.render_reporte_fidelizacion(
                connection,
                desde=window.desde,
                hasta=window.hasta,
                monto_minimo=MINIMO,
                formato="csv",
                out=io.BytesIO(),
                generated_at=GENERATED_AT,
                on_progress=stop_after_the_first_step,
            )
        assert connection.execute(select(1)).scalar_one() == 1


def test_a_report_is_not_a_txt(engine: Engine, window: ReportWindow) -> None:
    with pytest.raises(ValueError, match="formato must be one of excel, csv"):
        report(engine, window, formato="txt")


def test_the_aggregate_reads_only_the_partial_index(engine: Engine, window: ReportWindow) -> None:
    """Even under a generic plan (bound parameters unknown), the window's completed purchases
    come from an index-only scan of ix_compras_completadas_fecha, aggregated once."""
    rule = queries.LoyaltyRule(desde=window.desde, hasta=window.hasta, monto_minimo=MINIMO)
    statement = queries.reporte_fidelizacion_statement(rule)
    with engine.connect() as connection:
        compiled = statement.compile(connection)
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        connection.exec_driver_sql("SET LOCAL enable_bitmapscan = off")
        connection.exec_driver_sql("PREPARE reporte AS " + _positional(str(compiled)))
        try:
            plan = connection.exec_driver_sql(
                "EXPLAIN (FORMAT JSON) EXECUTE reporte("
                + ", ".join(["NULL"] * len(compiled.params))
                + ")"
            ).scalar_one()
        finally:
            # A prepared statement outlives the transaction: on the pooled connection, the next
            # test to get it (or this one, run again) would find "reporte" already there.
            connection.exec_driver_sql("DEALLOCATE reporte")
    scans = list(_nodes(plan[0]["Plan"]))
    compras_scans = [node for node in scans if node.get("Relation Name") == "compras"]
    assert [node["Node Type"] for node in compras_scans] == ["Index Only Scan"]
    assert compras_scans[0]["Index Name"] == "ix_compras_completadas_fecha"
    assert sum(node["Node Type"] == "Aggregate" for node in scans) >= 1


def _positional(sql: str) -> str:
    """psycopg's %(name)s placeholders as PREPARE's $1, $2…"""
    index = 0

    def number(_: Any) -> str:
        nonlocal index
        index += 1
        return f"${index}"

    return re.sub(r"%\([^)]+\)s", number, sql)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)

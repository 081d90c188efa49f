"""The customer export in each format, rendered from the real database and read back."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from sqlalchemy import Engine

from services.export_worker import exports
from services.export_worker.renderers import Column, Document, Kind, excel, unescape_formula
from shared.models import Cliente, Compra
from shared.settings import get_settings
from tests.factories import make_cliente, make_compra

BUSINESS_TZ = ZoneInfo(get_settings().timezone)
GENERATED_AT = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
COP_FORMAT = '"$" #,##0.00'
HEADER = [
    "Tipo de documento",
    "Número de documento",
    "Nombre",
    "Apellido",
    "Correo",
    "Teléfono",
    "Fecha de registro",
    "Activo",
    "Compras completadas",
    "Monto de compras completadas",
    "Número de factura",
    "Fecha de compra",
    "Monto",
    "Estado",
    "Descripción",
]
FORMULAS = {
    "nombre": '=HYPERLINK("http://x","y")',
    "apellido": "@SUM(A1)",
    "correo": "+cmd",
    "descripcion": "-2+3",
}


@dataclass(frozen=True)
class Exported:
    cliente: Cliente
    compras: list[Compra]  # newest first


def local(moment: datetime) -> str:
    return moment.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S")


def local_naive(moment: datetime) -> datetime:
    return moment.astimezone(BUSINESS_TZ).replace(tzinfo=None)


def render(engine: Engine, cliente_id: int, formato: str) -> tuple[exports.RenderedFile, bytes]:
    out = io.BytesIO()
    with engine.connect() as connection:
        rendered = exports.render_export_cliente(
            connection, cliente_id=cliente_id, formato=formato, out=out, generated_at=GENERATED_AT
        )
    return rendered, out.getvalue()


def csv_rows(content: bytes) -> list[list[str]]:
    assert content.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))


# One RFC 4180 field as written (quotes included) and what follows it: a comma or a record's end.
RAW_FIELD = re.compile(r'("(?:[^"]|"")*"|[^,"\r\n]*)(,|\r\n)')
BARE_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]{2})?")


def raw_records(content: bytes) -> list[list[str]]:
    """The fields of each record exactly as the file holds them, quotes included."""
    text = content.decode("utf-8-sig")
    records: list[list[str]] = [[]]
    position = 0
    while position < len(text):
        match = RAW_FIELD.match(text, position)
        assert match and match.end() > position, text[position : position + 80]
        records[-1].append(match.group(1))
        if match.group(2) == "\r\n":
            records.append([])
        position = match.end()
    assert records.pop() == []  # the last record ends with CRLF too
    return records


def semicolon_cells(content: bytes) -> list[str]:
    """The cells a spreadsheet whose list separator is `;` makes of the file: it splits at every
    `;` and line end outside double quotes, and drops the quotes."""
    cells, cell, quoted = [], "", False
    for char in content.decode("utf-8-sig"):
        if char == '"':
            quoted = not quoted
        elif char in ";\n" and not quoted:
            cells.append(cell.strip("\r"))
            cell = ""
        else:
            cell += char
    return [*cells, cell]


def sheet_xml_has_no_formula(content: bytes) -> bool:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheets = [name for name in archive.namelist() if name.startswith("xl/worksheets/")]
        assert len(sheets) == 2
        return all(
            b"<f>" not in archive.read(name) and b"<f " not in archive.read(name) for name in sheets
        )


@pytest.fixture(scope="module")
def exported(engine: Engine) -> Exported:
    cliente = make_cliente(
        engine,
        nombre="José",
        apellido="Núñez Peña",
        telefono="+57 300 123 4567",
        fecha_registro=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )

    def compra(when: datetime, monto: str, estado: str, descripcion: str) -> Compra:
        return make_compra(
            engine, cliente, fecha_compra=when, monto=monto, estado=estado, descripcion=descripcion
        )

    oldest = compra(datetime(2026, 1, 10, 15, tzinfo=UTC), "1500000.00", "completada", 'TV 55"')
    pending = compra(datetime(2026, 3, 1, 12, tzinfo=UTC), "250000.50", "pendiente", "Línea 1\nL2")
    # 04:00 UTC is 23:00 of the day before in Bogotá: the file shows the business date.
    newest = compra(datetime(2026, 5, 20, 4, tzinfo=UTC), "99.99", "completada", "Cable, HDMI")
    canceled = compra(datetime(2026, 4, 1, 12, tzinfo=UTC), "700000.00", "cancelada", "Nevera")
    return Exported(cliente, [newest, canceled, pending, oldest])


def test_csv_has_every_value_in_its_own_cell(engine: Engine, exported: Exported) -> None:
    cliente = exported.cliente
    rendered, content = render(engine, cliente.id, "csv")

    assert rendered == exports.RenderedFile(
        filename=f"cliente_CC_{cliente.numero_documento}.csv",
        content_type="text/csv; charset=utf-8",
        row_count=4,
    )
    assert b"\r\n" in content  # RFC 4180 line ends
    header, *rows = csv_rows(content)
    assert header == HEADER
    assert len(rows) == 4
    customer = [
        "CC",
        cliente.numero_documento,
        "José",
        "Núñez Peña",
        cliente.correo,
        "+57 300 123 4567",  # a phone number keeps its +
        local(cliente.fecha_registro),
        "sí",
        "2",
        "1500099.99",  # completed only, as the API counts them
    ]
    assert all(row[:10] == customer for row in rows)
    purchases = [row[10:] for row in rows]
    assert purchases == [
        [c.numero_factura, local(c.fecha_compra), f"{c.monto:.2f}", c.estado, c.descripcion]
        for c in exported.compras
    ]
    assert purchases[0][1] == local(exported.compras[0].fecha_compra)  # 2026-05-19 23:00:00
    assert purchases[2][4] == "Línea 1\nL2"  # quoted by the csv module, read back whole
    assert purchases[3][2] == "1500000.00"


def test_excel_sheet_layout_and_types(engine: Engine, exported: Exported) -> None:
    cliente = exported.cliente
    rendered, content = render(engine, cliente.id, "excel")

    assert rendered.filename == f"cliente_CC_{cliente.numero_documento}.xlsx"
    assert rendered.content_type == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert rendered.row_count == 4
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    assert workbook.sheetnames == ["Cliente", "Parámetros"]
    sheet = workbook["Cliente"]
    assert [cell.value for cell in sheet[1]] == HEADER
    assert all(cell.font.b for cell in sheet[1])
    assert sheet["A1"].fill.fgColor.rgb.endswith("DDEBF7")
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:O5"
    assert sheet.max_row == 5
    assert sheet.column_dimensions["E"].width > sheet.column_dimensions["A"].width

    first = [cell for cell in sheet[2]]
    assert [cell.value for cell in first[:6]] == [
        "CC",
        cliente.numero_documento,
        "José",
        "Núñez Peña",
        cliente.correo,
        "+57 300 123 4567",
    ]
    assert all(cell.data_type == "s" for cell in first[:6])
    assert first[6].value == local_naive(cliente.fecha_registro)  # 2025-01-01 22:04:05
    assert first[8].value == 2
    total, monto = first[9], first[12]
    assert total.value == pytest.approx(1500099.99) and total.number_format == COP_FORMAT
    assert isinstance(monto.value, float) and monto.number_format == COP_FORMAT
    assert first[11].value == local_naive(exported.compras[0].fecha_compra)
    assert first[11].is_date
    assert [row[10].value for row in sheet.iter_rows(min_row=2)] == [
        c.numero_factura for c in exported.compras
    ]
    assert [row[12].value for row in sheet.iter_rows(min_row=2)] == [
        float(c.monto) for c in exported.compras
    ]

    parameters = {row[0].value: row[1] for row in workbook["Parámetros"].iter_rows(min_row=2)}
    assert parameters["Cliente (id)"].value == cliente.id
    assert parameters["Formato"].value == "excel"
    assert parameters["Generado"].value == local_naive(GENERATED_AT)
    assert parameters["Generado"].is_date
    assert parameters["Zona horaria de las fechas"].value == BUSINESS_TZ.key
    assert sheet_xml_has_no_formula(content)


def test_txt_is_a_readable_fixed_width_report(engine: Engine, exported: Exported) -> None:
    cliente = exported.cliente
    rendered, content = render(engine, cliente.id, "txt")

    assert rendered.filename == f"cliente_CC_{cliente.numero_documento}.txt"
    assert rendered.content_type == "text/plain; charset=utf-8"
    assert rendered.row_count == 4
    text = content.decode("utf-8")
    lines = text.splitlines()
    assert lines[0] == "EXPORTACIÓN DE CLIENTE"
    assert f"Generado: {local(GENERATED_AT)} ({BUSINESS_TZ.key})" in text
    assert f"Número de documento : {cliente.numero_documento}" in text
    assert "  Nombre              : José" in text

    header_index = next(i for i, line in enumerate(lines) if line.startswith("Número de factura"))
    header = lines[header_index]
    table = lines[header_index + 2 : header_index + 6]
    assert [line.split()[0] for line in table] == [c.numero_factura for c in exported.compras]
    # Columns line up: every date starts under its title, amounts end under theirs.
    date_at = header.index("Fecha de compra")
    assert all(line[date_at : date_at + 19].startswith("2026-") for line in table)
    amount_end = header.index("Monto") + len("Monto")  # right-aligned, like its amounts
    assert [line[:amount_end].split()[-1] for line in table] == [
        "99,99",
        "700.000,00",
        "250.000,50",
        "1.500.000,00",
    ]
    assert table[2].endswith("Línea 1 L2")  # a newline would break the layout
    assert lines[header_index + 6] == "(4 filas)"
    assert "Compras completadas          : 2" in text
    assert "Monto de compras completadas : 1.500.099,99" in text


def test_customer_without_purchases_is_still_exported(engine: Engine) -> None:
    cliente = make_cliente(engine, codigo="NIT", numero_documento="900.123.456-7", activo=False)

    rendered, content = render(engine, cliente.id, "csv")
    assert rendered.filename == "cliente_NIT_900.123.456-7.csv"
    assert rendered.row_count == 0
    _, *rows = csv_rows(content)
    assert len(rows) == 1
    assert rows[0][:4] == ["NIT", "900.123.456-7", cliente.nombre, cliente.apellido]
    assert rows[0][7:10] == ["no", "0", "0.00"]
    assert rows[0][10:] == ["", "", "", "", ""]

    _, content = render(engine, cliente.id, "excel")
    sheet = openpyxl.load_workbook(io.BytesIO(content))["Cliente"]
    assert sheet.max_row == 2 and sheet.auto_filter.ref == "A1:O2"
    assert sheet["B2"].value == "900.123.456-7" and sheet["K2"].value is None

    _, content = render(engine, cliente.id, "txt")
    assert "(0 filas)" in content.decode()


def test_formulas_in_customer_data_stay_text(engine: Engine) -> None:
    cliente = make_cliente(
        engine,
        nombre=FORMULAS["nombre"],
        apellido=FORMULAS["apellido"],
        correo=FORMULAS["correo"],
    )
    make_compra(
        engine,
        cliente,
        descripcion=FORMULAS["descripcion"],
        fecha_compra=datetime(2021, 1, 1, tzinfo=UTC),
    )
    make_compra(
        engine, cliente, descripcion="\t=1+1", fecha_compra=datetime(2020, 1, 1, tzinfo=UTC)
    )

    _, content = render(engine, cliente.id, "csv")
    _, *rows = csv_rows(content)
    fields = {"nombre": rows[0][2], "apellido": rows[0][3], "correo": rows[0][4]}
    fields["descripcion"] = rows[0][14]
    for name, raw in FORMULAS.items():
        assert fields[name] == "'" + raw
        assert unescape_formula(fields[name]) == raw
    assert rows[1][14] == "'\t=1+1"
    assert rows[0][5] == "+57 300 123 4567"

    _, content = render(engine, cliente.id, "excel")
    sheet = openpyxl.load_workbook(io.BytesIO(content))["Cliente"]
    cells = {"nombre": sheet["C2"], "apellido": sheet["D2"], "correo": sheet["E2"]}
    cells["descripcion"] = sheet["O2"]
    for name, raw in FORMULAS.items():
        assert cells[name].value == raw
        assert cells[name].data_type == "s"
    assert sheet["O3"].value == "\t=1+1"
    assert sheet_xml_has_no_formula(content)


def test_every_csv_text_field_is_quoted_and_numbers_are_bare(engine: Engine) -> None:
    """Issue 12 item 14: a `;` inside an unquoted name made a new cell, starting with `=`, in a
    spreadsheet that separates cells with `;` (Colombia's usual one)."""
    nombre = "Juan;=cmd|' /C calc'!A0"
    cliente = make_cliente(engine, nombre=nombre, apellido="Tab\t=1+1")
    compra = make_compra(
        engine,
        cliente,
        monto="1234.50",
        descripcion="a;@SUM(A1)",
        fecha_compra=datetime(2020, 2, 2, tzinfo=UTC),
    )

    _, content = render(engine, cliente.id, "csv")
    _, row = csv_rows(content)
    assert row[2] == nombre and row[3] == "Tab\t=1+1" and row[14] == "a;@SUM(A1)"
    assert row[12] == "1234.50" and compra.numero_factura == row[10]

    assert b"\"Juan;=cmd|' /C calc'!A0\"" in content
    header, raw = raw_records(content)
    assert all(field.startswith('"') and field.endswith('"') for field in header)
    numbers = {8, 9, 12}  # Compras completadas, Monto de compras completadas, Monto
    assert [raw[i] for i in sorted(numbers)] == ["1", "1234.50", "1234.50"]
    for index, field in enumerate(raw):
        if index in numbers:
            assert BARE_NUMBER.fullmatch(field), (index, field)
        else:
            assert field.startswith('"') and field.endswith('"'), (index, field)

    # Commas do not separate cells there: each record is one cell, no `;` splits it, and so
    # no cell starts with `=`.
    _, row_cell, after_last_line = semicolon_cells(content)
    assert nombre in row_cell and "a;@SUM(A1)" in row_cell and after_last_line == ""
    assert not row_cell.startswith(("=", "@", "+", "-"))


def test_unknown_customer_is_a_permanent_failure(engine: Engine) -> None:
    with pytest.raises(exports.ClienteNotFound):
        render(engine, 2**62, "csv")


@pytest.mark.parametrize("formato", ["pdf", "xlsx", ""])
def test_only_known_formats(engine: Engine, exported: Exported, formato: str) -> None:
    with pytest.raises(ValueError, match="formato must be one of csv, excel, txt"):
        render(engine, exported.cliente.id, formato)


def test_generation_time_must_be_aware(engine: Engine, exported: Exported) -> None:
    with engine.connect() as connection, pytest.raises(ValueError, match="timezone-aware"):
        exports.render_export_cliente(
            connection,
            cliente_id=exported.cliente.id,
            formato="csv",
            out=io.BytesIO(),
            generated_at=datetime(2026, 11, 26, 10, 30),
        )


def test_large_amounts_keep_their_cents(engine: Engine) -> None:
    cliente = make_cliente(engine)
    # Dated years back: a purchase this big "now" would top every other test's report.
    make_compra(
        engine,
        cliente,
        monto=Decimal("9999999999999.99"),
        fecha_compra=datetime(2021, 1, 1, tzinfo=UTC),
    )
    _, content = render(engine, cliente.id, "csv")
    _, row = csv_rows(content)
    assert row[9] == row[12] == "9999999999999.99"
    _, content = render(engine, cliente.id, "excel")
    sheet = openpyxl.load_workbook(io.BytesIO(content))["Cliente"]
    assert Decimal(repr(sheet["M2"].value)) == Decimal("9999999999999.99")


def test_excel_refuses_rows_beyond_its_sheet_limit(
    engine: Engine, exported: Exported, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Excel's real limit is 1,048,576 rows; rows past it would be dropped without a word.
    monkeypatch.setattr(excel.__name__ + ".MAX_ROWS", len(exported.compras))
    with pytest.raises(excel.TooManyRows, match="do not fit in an Excel sheet"):
        render(engine, exported.cliente.id, "excel")


@pytest.mark.parametrize(
    ("total", "reported"),
    [
        (100, list(range(5, 100, 5))),  # every 5 %, never 100 before the file is closed
        (7, [14, 28, 42, 57, 71, 85, 99]),  # each row is a step of its own
        (1, [99]),
        (1000, list(range(5, 100, 5))),
    ],
)
def test_progress_is_reported_in_steps_while_rows_stream(total: int, reported: list[int]) -> None:
    calls: list[int] = []
    rows = [(n,) for n in range(total)]
    counted = exports._Counted(rows, total_of=lambda _: total, on_progress=calls.append)
    assert list(counted) == rows
    assert counted.count == total
    assert calls == reported


def test_an_export_reports_progress_through_its_purchases(engine: Engine) -> None:
    cliente = make_cliente(engine)
    for _ in range(40):
        make_compra(engine, cliente)
    progress: list[int] = []
    with engine.connect() as connection:
        rendered = exports.render_export_cliente(
            connection,
            cliente_id=cliente.id,
            formato="csv",
            out=io.BytesIO(),
            generated_at=GENERATED_AT,
            on_progress=progress.append,
        )
    assert rendered.row_count == 40
    # 0 before anything is read, a step every 5 % of the purchases written, 100 once closed.
    assert progress == [0, *range(5, 100, 5), 100]


def test_excel_text_columns_hold_text_whatever_the_value() -> None:
    # The xlsx binding types each cell by its Python value: a text column's non-str value must
    # still be text, a missing value a blank, and an amount a number in the COP format.
    columns = [Column("Código"), Column("Nota"), Column("Monto", Kind.MONEY)]
    document = Document(
        "t",
        "Hoja",
        columns,
        [(7, None, Decimal("12.50")), ("=1+1", "x", None)],
        [],
        GENERATED_AT,
        BUSINESS_TZ,
    )
    out = io.BytesIO()
    excel.render(document, out)

    sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue()))["Hoja"]
    assert [(cell.value, cell.data_type) for cell in sheet["A"][1:]] == [("7", "s"), ("=1+1", "s")]
    assert sheet["B2"].value is None and sheet["C3"].value is None
    assert sheet["C2"].value == 12.5 and sheet["C2"].number_format == excel.MONEY_FORMAT

"""The two files Clientes makes (SPEC §5): a customer's export and the loyalty report.

Each function reads its rows from the database, describes them as a `renderers.Document` and
streams them into `out` in the requested format. The job machinery (tasks.py) calls these.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, BinaryIO, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection

from services.export_worker import queries
from services.export_worker.renderers import Column, Document, FileFormat, Kind, Value
from services.export_worker.renderers import csv as csv_renderer
from services.export_worker.renderers import excel as excel_renderer
from services.export_worker.renderers import txt as txt_renderer
from shared.job_params import FORMATOS_EXPORT, FORMATOS_REPORTE
from shared.settings import get_settings

FILE_FORMATS: dict[str, FileFormat] = {
    "csv": csv_renderer.FILE_FORMAT,
    "excel": excel_renderer.FILE_FORMAT,
    "txt": txt_renderer.FILE_FORMAT,
}
PROGRESS_STEP = 5  # percent between two on_progress calls
LOYALTY_RULE_TEXT = (
    "Clientes activos cuyas compras completadas en el periodo suman más que el monto mínimo, "
    "de mayor a menor monto total"
)

DOCUMENTO_COLUMNS = (
    Column("Tipo de documento", width=10),
    Column("Número de documento", width=16),
    Column("Nombre", width=20),
    Column("Apellido", width=20),
    Column("Correo", width=30),
    Column("Teléfono", width=18),
)
CLIENTE_COLUMNS = (
    *DOCUMENTO_COLUMNS,
    Column("Fecha de registro", Kind.DATETIME, 20),
    Column("Activo", width=8),
)
TOTALES_COLUMNS = (
    Column("Compras completadas", Kind.INTEGER, 12),
    Column("Monto de compras completadas", Kind.MONEY, 20),
)
COMPRA_COLUMNS = (
    Column("Número de factura", width=24),
    Column("Fecha de compra", Kind.DATETIME, 19),
    Column("Monto", Kind.MONEY, 16),
    Column("Estado", width=11),
    Column("Descripción", width=40),
)
REPORTE_COLUMNS = (
    *DOCUMENTO_COLUMNS,
    Column("Número de compras", Kind.INTEGER, 12),
    Column("Monto total", Kind.MONEY, 20),
)


@dataclass(frozen=True, slots=True)
class RenderedFile:
    filename: str
    content_type: str
    row_count: int  # data rows: purchases for an export, customers for a report
    not_found: int | None = None  # a bulk export's documents that matched no customer
    sha256: str | None = None  # the file's, when the renderer hashed it on the way


class ClienteNotFound(Exception):
    """The customer does not exist (any more): a permanent failure."""


RowT = TypeVar("RowT", bound=Sequence[Any])


class _Counted(Generic[RowT]):
    """Counts the rows a renderer takes, and reports progress when it knows the total."""

    def __init__(
        self,
        rows: Iterable[RowT],
        *,
        total_of: Callable[[RowT], int] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self._rows = rows
        self._total_of = total_of
        self._on_progress = on_progress
        self._reported = 0
        self.count = 0

    def __iter__(self) -> Iterator[RowT]:
        # The row count at which progress is next worth a look: one comparison per row.
        look_at = 1 if self._on_progress and self._total_of else None
        for row in self._rows:
            yield row
            self.count += 1
            if look_at is not None and self.count >= look_at:
                look_at = self._report(row)

    def _report(self, row: RowT) -> int:
        """Report progress if it moved a step; returns the row count of the next step."""
        assert self._on_progress is not None and self._total_of is not None
        total = self._total_of(row)
        # 100 is for the finished file, after the writer has closed it.
        percent = min(99, self.count * 100 // total)
        if percent >= self._reported + PROGRESS_STEP:
            self._reported = percent
            self._on_progress(percent)
        return -(-(self._reported + PROGRESS_STEP) * total // 100)  # ceiling division


def _file_format(formato: str, allowed: tuple[str, ...]) -> FileFormat:
    if formato not in allowed:
        raise ValueError(f"formato must be one of {', '.join(allowed)}; got {formato!r}")
    return FILE_FORMATS[formato]


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware")


def _filename_part(text: str) -> str:
    """Safe in a file name and a storage key: NIT 900.123.456-7 stays readable."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("._-") or "sin_numero"


def render_export_cliente(
    connection: Connection,
    *,
    cliente_id: int,
    formato: str,
    out: BinaryIO,
    generated_at: datetime,
    on_progress: Callable[[int], None] | None = None,
) -> RenderedFile:
    """The customer's data, totals and all their purchases, newest first. Progress: 0, then
    by the purchases written (their count is read with the customer's data), 100 when done."""
    file_format = _file_format(formato, FORMATOS_EXPORT)
    _require_aware(generated_at, "generated_at")
    timezone = ZoneInfo(get_settings().timezone)
    if on_progress:
        on_progress(0)
    cliente = queries.cliente(connection, cliente_id)
    if cliente is None:
        raise ClienteNotFound(f"Customer {cliente_id} does not exist.")
    record_values: list[Value] = [
        cliente.codigo,
        cliente.numero_documento,
        cliente.nombre,
        cliente.apellido,
        cliente.correo,
        cliente.telefono,
        cliente.fecha_registro,
        "sí" if cliente.activo else "no",
    ]
    with queries.compras(connection, cliente_id) as rows:
        compras = _Counted(rows, total_of=lambda _: max(cliente.filas, 1), on_progress=on_progress)
        document = Document(
            title="Exportación de cliente",
            sheet_name="Cliente",
            columns=COMPRA_COLUMNS,
            rows=compras,
            parameters=[("Cliente (id)", cliente_id), ("Formato", formato)],
            generated_at=generated_at,
            timezone=timezone,
            record=list(zip(CLIENTE_COLUMNS, record_values, strict=True)),
            record_title="Cliente",
            totals=list(
                zip(
                    TOTALES_COLUMNS,
                    (cliente.total_compras, cliente.monto_total_compras),
                    strict=True,
                )
            ),
        )
        file_format.render(document, out)
    if on_progress:
        on_progress(100)
    filename = (
        f"cliente_{_filename_part(cliente.codigo)}_{_filename_part(cliente.numero_documento)}"
    )
    return RenderedFile(
        filename=f"{filename}.{file_format.extension}",
        content_type=file_format.content_type,
        row_count=compras.count,
    )


def render_reporte_fidelizacion(
    connection: Connection,
    *,
    desde: datetime,
    hasta: datetime,
    monto_minimo: Decimal,
    formato: str,
    out: BinaryIO,
    generated_at: datetime,
    on_progress: Callable[[int], None] | None = None,
) -> RenderedFile:
    """One row per qualifying customer (see `queries.LoyaltyRule`), biggest total first."""
    file_format = _file_format(formato, FORMATOS_REPORTE)
    _require_aware(generated_at, "generated_at")
    timezone = ZoneInfo(get_settings().timezone)
    rule = queries.LoyaltyRule(desde=desde, hasta=hasta, monto_minimo=monto_minimo)
    if on_progress:
        on_progress(0)
    if file_format is csv_renderer.FILE_FORMAT:
        row_count = _write_csv_report(connection, rule, out, on_progress)
    else:
        with queries.reporte_fidelizacion(connection, rule) as report_rows:
            rows = _Counted(report_rows, total_of=lambda row: int(row[-1]), on_progress=on_progress)
            document = Document(
                title="Reporte de fidelización",
                sheet_name="Reporte",
                columns=REPORTE_COLUMNS,
                # The last column, filas, is for progress only.
                rows=(row[:-1] for row in rows),
                parameters=[
                    ("Desde (incluido)", desde),
                    ("Hasta (excluido)", hasta),
                    ("Monto mínimo (el total debe superarlo)", monto_minimo),
                    ("Formato", formato),
                    ("Regla", LOYALTY_RULE_TEXT),
                ],
                generated_at=generated_at,
                timezone=timezone,
            )
            file_format.render(document, out)
        row_count = rows.count
    if on_progress:
        on_progress(100)
    period = "_".join(
        moment.astimezone(timezone).date().isoformat() for moment in (rule.desde, rule.hasta)
    )
    return RenderedFile(
        filename=f"reporte_fidelizacion_{period}.{file_format.extension}",
        content_type=file_format.content_type,
        row_count=row_count,
    )


def csv_report_record(columns: Sequence[ColumnElement[Any]]) -> ColumnElement[bytes]:
    """A report row's CSV record, written by PostgreSQL (`csv_renderer.sql_record`)."""
    return csv_renderer.sql_record(list(zip(REPORTE_COLUMNS, columns, strict=True)))


def _write_csv_report(
    connection: Connection,
    rule: queries.LoyaltyRule,
    out: BinaryIO,
    on_progress: Callable[[int], None] | None,
) -> int:
    """The csv report with no Python per value: PostgreSQL quotes, escapes and joins each
    record, the worker only appends them to the header. A million rows: the aggregate's time
    plus about a second. Returns the row count."""
    with queries.reporte_fidelizacion_records(connection, rule, csv_report_record) as records:
        rows = _Counted(records, total_of=lambda row: row[1], on_progress=on_progress)
        csv_renderer.write_records(REPORTE_COLUMNS, (record for record, _ in rows), out)
    return rows.count

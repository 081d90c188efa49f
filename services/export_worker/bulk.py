"""Bulk exports (SPEC §10): which customers a job selects, and the file of them.

One statement counts the rows (and, for documents, those that named nobody), one selects them,
ordered by customer id, and they stream straight into the file: no query per customer, and the
id and document lists never enter this process (PostgreSQL joins them from `job_inputs`, where
the API stored them as arrays). The totals of each row are read from `clientes_totales`, which
triggers on compras keep.

- csv and jsonl: PostgreSQL writes the rows itself (`COPY (SELECT …) TO STDOUT`), one row per
  chunk, and this process only moves bytes: about 0.5 µs a row here, against ~7 µs for a row
  through psycopg's row objects and the csv module. The SPEC §5 rules are kept in the SQL, built
  from the renderers' own definitions (column kinds, formula triggers, the number and phone
  patterns that stay bare), and `tests/worker/test_bulk_sql.py` checks the SQL escaping against
  `renderers.escape_formula`. A large file is written in two halves at once by two backends
  reading one snapshot (`_SecondHalf`).
- excel: typed rows stream into the excel renderer like every other xlsx file.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

import psycopg
import psycopg.sql
from sqlalchemy import Connection, String, literal_column
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect

from services.export_worker import exports, queries
from services.export_worker.renderers import (
    Column,
    Document,
    Kind,
    Value,
    escape_formula_sql,
)
from services.export_worker.renderers import csv as csv_renderer
from services.export_worker.renderers import excel as excel_renderer
from shared import file_formats
from shared.job_params import BulkExportParams, BulkFilter
from shared.models import texto_busqueda

# Rows written between two looks at the job (progress, cancel) and two writes to the file.
FLUSH_BYTES = 256 * 1024
CRLF = b"\r\n"
LF = b"\n"
# A csv or jsonl file of this many rows or more is written in two halves by two PostgreSQL
# backends at once (see _SecondHalf): the small bench's jsonl took 2.6 s instead of 4.0 s.
SPLIT_MIN_ROWS = 20_000
# Lists longer than this are joined by hashing them, not by an index probe per entry (see
# Selection.long_list).
FEW_CUSTOMERS = 10_000
# Room for a long list's hash table and the sort of its customers by id (100,000 entries take
# about 15 MB each), so that neither spills to disk.
BULK_WORK_MEM = "64MB"
_DIALECT = psycopg_dialect()  # type: ignore[no-untyped-call]
# A purchase's number, date and amount: the columns the CSV writes bare (csv renderer rule).
_BARE = frozenset({Kind.INTEGER, Kind.MONEY})


@dataclass(frozen=True, slots=True)
class Field:
    """A column of the file and the SQL of its value (typed: the excel renderer's input)."""

    column: Column
    sql: str
    # NULL possible: a purchase's fields are, for a customer without any (left join).
    nullable: bool = True
    # Its values are constants that escape_formula leaves as they are (test_bulk_sql checks):
    # the CSV writes them without the per-row escape.
    constant: bool = False


# The activo column's two values.
YES_NO = ("sí", "no")

CLIENTE_FIELDS = (
    Field(Column("Id", Kind.INTEGER, 10), "c.id", nullable=False),
    *(
        Field(column, sql, nullable=False)
        for column, sql in zip(
            exports.CLIENTE_COLUMNS[:-1],
            (
                "t.codigo",
                "c.numero_documento",
                "c.nombre",
                "c.apellido",
                "c.correo",
                "c.telefono",
                "c.fecha_registro",
            ),
            strict=True,
        )
    ),
    Field(
        exports.CLIENTE_COLUMNS[-1],
        f"CASE WHEN c.activo THEN '{YES_NO[0]}' ELSE '{YES_NO[1]}' END",
        nullable=False,
        constant=True,
    ),
    *(
        Field(column, sql, nullable=False)
        for column, sql in zip(
            exports.TOTALES_COLUMNS,
            ("coalesce(totales.cantidad, 0)", "coalesce(totales.monto, 0.00)"),
            strict=True,
        )
    ),
)
COMPRA_FIELDS = tuple(
    Field(column, sql)
    for column, sql in zip(
        exports.COMPRA_COLUMNS,
        ("p.numero_factura", "p.fecha_compra", "p.monto", "p.estado", "p.descripcion"),
        strict=True,
    )
)

# The completed purchases' count and sum, per customer, as the triggers on compras keep them
# (no row: none): read, not aggregated from every purchase (backend CPU at the small size, same
# run: every-customer csv 0.79 → 0.47 s, 100,000 documents 0.98 → 0.67 s).
_TOTALES = "LEFT JOIN clientes_totales AS totales ON totales.cliente_id = c.id"
# For jsonl with purchases: one probe of ix_compras_cliente_fecha per customer yields its
# purchases, newest first as the index has them. Each purchase is JSON made by concatenation,
# keys in column order and no spaces, byte for byte what array_to_json of the row wrote before,
# for a third less CPU (every column is NOT NULL; each text goes through to_json for its
# escaping; estado is one of three words, by a CHECK constraint).
_COMPRAS_LISTA = """CROSS JOIN LATERAL (
    SELECT coalesce(string_agg(x.json, ','), '') AS lista
    FROM (
        SELECT '{"id":' || p.id
            || ',"numero_factura":' || to_json(p.numero_factura::text)
            || ',"fecha_compra":' || to_json(p.fecha_compra)
            || ',"monto":"' || p.monto
            || '","descripcion":' || to_json(p.descripcion)
            || ',"estado":"' || p.estado || '"}' AS json
        FROM compras AS p WHERE p.cliente_id = c.id
        ORDER BY p.fecha_compra DESC, p.id DESC
    ) AS x
) AS compras"""
# A customer as the detail's JSON, with json_build_object's spacing (the bytes jsonl files have
# always had), by concatenation for the same reason; the document type's JSON is made once per
# type (OFFSET 0 keeps that subquery apart, so its expression is not pulled up to every row).
_CLIENTE_JSON = """'{"id" : ' || c.id
    || ', "tipo_documento" : ' || t.json
    || ', "numero_documento" : ' || to_json(c.numero_documento::text)
    || ', "nombre" : ' || to_json(c.nombre::text)
    || ', "apellido" : ' || to_json(c.apellido::text)
    || ', "nombre_completo" : ' || to_json(c.nombre || ' ' || c.apellido)
    || ', "correo" : ' || to_json(c.correo::text)
    || ', "telefono" : ' || to_json(c.telefono::text)
    || ', "fecha_registro" : ' || to_json(c.fecha_registro)
    || ', "activo" : ' || c.activo
    || ', "total_compras" : ' || coalesce(totales.cantidad, 0)
    || ', "monto_total_compras" : "' || coalesce(totales.monto, 0.00) || '"'"""
_COMPRAS_JSON = """ || ', "compras" : [' || compras.lista || ']'"""
_FROM = "clientes AS c JOIN tipos_documento AS t ON t.id = c.tipo_documento_id"
_FROM_JSON = """clientes AS c JOIN (
    SELECT t.*, json_build_object('id', t.id, 'codigo', t.codigo, 'nombre', t.nombre)::text AS json
    FROM tipos_documento AS t OFFSET 0
) AS t ON t.id = c.tipo_documento_id"""
_PURCHASES = "LEFT JOIN compras AS p ON p.cliente_id = c.id"
_ORDER = "ORDER BY c.id"
_ORDER_WITH_PURCHASES = "ORDER BY c.id, p.fecha_compra DESC, p.id DESC"
# The job's documents, as pairs: two set-returning functions in one select list advance
# together (a third of the CPU of unnest(codigos, numeros) in FROM, which stores its rows).
_DOCUMENTOS = """(
    SELECT unnest(i.codigos) AS codigo, unnest(i.numeros) AS numero
    FROM job_inputs AS i WHERE i.job_id = %(job_id)s
) AS d"""


@dataclass(frozen=True, slots=True)
class Selection:
    """The customers a bulk export takes: its filters, combined with AND, as SQL conditions on
    `c` (clientes) with their parameters."""

    job_id: uuid.UUID
    filtro: BulkFilter

    @property
    def long_list(self) -> bool:
        """Whether a list is long enough to be joined by hashing it (one pass over the
        customers) rather than by an index probe per entry. PostgreSQL cannot tell: it guesses
        10 entries for an array of job_inputs. The rows of 100,000 documents at the small size:
        2.4 s probed, 0.9 s hashed (EXPLAIN ANALYZE, under load)."""
        return any(
            count is not None and count > FEW_CUSTOMERS
            for count in (self.filtro.ids, self.filtro.documentos)
        )

    def where(self, *, documentos: bool = True) -> tuple[str, dict[str, Any]]:
        """The conditions and their parameters; without the documents' one when `documentos`
        is false (for a statement that joins the documents itself)."""
        f = self.filtro
        conditions: list[str] = []
        params: dict[str, Any] = {"job_id": self.job_id}
        if f.ids is not None:
            conditions.append(
                "c.id IN (SELECT unnest(i.ids) FROM job_inputs AS i WHERE i.job_id = %(job_id)s)"
            )
        if f.documentos is not None and documentos:
            # EXISTS, not IN: the list is hashed as it is, not made unique first.
            conditions.append(
                f"EXISTS (SELECT 1 FROM {_DOCUMENTOS}"
                " WHERE d.codigo = t.codigo AND d.numero = c.numero_documento)"
            )
        if f.q is not None:
            conditions.append(f"{texto_busqueda('c')} LIKE lower(%(pattern)s)")
            params["pattern"] = contains_pattern(f.q)
        if f.activo is not None:
            conditions.append("c.activo = %(activo)s")
            params["activo"] = f.activo
        if f.tipo_documento is not None:
            conditions.append("t.codigo = %(tipo_documento)s")
            params["tipo_documento"] = f.tipo_documento
        if f.registrados_desde is not None:
            conditions.append("c.fecha_registro >= %(registrados_desde)s")
            params["registrados_desde"] = f.registrados_desde
        if f.registrados_hasta is not None:
            conditions.append("c.fecha_registro < %(registrados_hasta)s")
            params["registrados_hasta"] = f.registrados_hasta
        if f.por_compras:
            window = ["w.cliente_id = c.id", "w.estado = 'completada'"]
            if f.compras_desde is not None:
                window.append("w.fecha_compra >= %(compras_desde)s")
                params["compras_desde"] = f.compras_desde
            if f.compras_hasta is not None:
                window.append("w.fecha_compra < %(compras_hasta)s")
                params["compras_hasta"] = f.compras_hasta
            conditions.append(f"EXISTS (SELECT 1 FROM compras AS w WHERE {' AND '.join(window)})")
        return " AND ".join(conditions) or "true", params


def contains_pattern(fragment: str) -> str:
    """A LIKE pattern matching `fragment` literally anywhere (\\ is LIKE's escape character)."""
    escaped = fragment.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# How many rows of the file a customer `{id}` makes with one row per purchase: at least one.
_ROWS_WITH_PURCHASES = "greatest((SELECT count(*) FROM compras AS p WHERE p.cliente_id = {id}), 1)"


def count_statement(where: str, incluir_compras: bool) -> str:
    """How many rows the file will have: customers, or their purchases (at least one row each);
    and the middle customer's id (NULL for none), where the file splits in halves."""
    rows = _ROWS_WITH_PURCHASES.format(id="c.id") if incluir_compras else "1"
    return (
        f"SELECT coalesce(sum({rows}), 0), percentile_disc(0.5) WITHIN GROUP (ORDER BY c.id)"
        f" FROM {_FROM} WHERE {where}"
    )


def documents_count_statement(other_conditions: str, incluir_compras: bool) -> str:
    """In one pass over the job's documents: how many name no customer at all (whatever the
    other filters), then what count_statement tells, the customers they name being grouped so
    that one named twice counts once."""
    rows = _ROWS_WITH_PURCHASES.format(id="named.id") if incluir_compras else "1"
    taken = "named.id IS NOT NULL AND named.taken"
    return f"""
SELECT coalesce(sum(named.entries) FILTER (WHERE named.id IS NULL), 0),
    coalesce(sum({rows}) FILTER (WHERE {taken}), 0),
    percentile_disc(0.5) WITHIN GROUP (ORDER BY named.id) FILTER (WHERE {taken})
FROM (
    SELECT c.id, count(*) AS entries, bool_or({other_conditions}) AS taken
    FROM {_DOCUMENTOS}
    LEFT JOIN ({_FROM}) ON t.codigo = d.codigo AND c.numero_documento = d.numero
    GROUP BY c.id
) AS named"""


def rows_statement(where: str, fields: Sequence[str], *, incluir_compras: bool) -> str:
    """The file's rows, customer by customer in id order (and each customer's purchases newest
    first, one row each, when `incluir_compras`)."""
    joins = _TOTALES
    order = _ORDER
    if incluir_compras:
        joins += f"\n{_PURCHASES}"
        order = _ORDER_WITH_PURCHASES
    return f"SELECT {', '.join(fields)}\nFROM {_FROM}\n{joins}\nWHERE {where}\n{order}"


def jsonl_statement(where: str, *, incluir_compras: bool) -> str:
    """One JSON document per customer (the detail's fields; `compras` inline when asked)."""
    document = f"{_CLIENTE_JSON}{_COMPRAS_JSON if incluir_compras else ''} || '}}'"
    joins = f"{_TOTALES}\n{_COMPRAS_LISTA}" if incluir_compras else _TOTALES
    return f"SELECT {document}\nFROM {_FROM_JSON}\n{joins}\nWHERE {where}\n{_ORDER}"


# CSV in SQL: each field as the csv renderer writes it.


def escaped_text_sql(value: str) -> str:
    """`renderers.escape_formula_sql`, the one SQL twin of `escape_formula` (the csv report
    uses it too), over `value`, an SQL expression of this module's statements, as SQL text with
    its constants inline (percent signs doubled for psycopg's parameter style)."""
    expression = escape_formula_sql(literal_column(value, String))
    compiled = expression.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True})
    return str(compiled)


def csv_field_sql(field: Field) -> tuple[str, bool]:
    """The SQL of a field as CSV text, and whether COPY must quote it (every text field is
    quoted; counts and money stay bare, so spreadsheets read them as numbers)."""
    if field.column.kind in _BARE:
        return field.sql, False
    if field.column.kind is Kind.DATETIME:
        # Truncated like local_naive; a third cheaper than to_char (DateStyle ISO: see below).
        local = f"date_trunc('second', {field.sql} AT TIME ZONE %(timezone)s)::text"
        return (f"coalesce({local}, '')" if field.nullable else local), True
    if field.constant:
        return field.sql, True
    # The escape reads its text several times: a coalesce only where NULL can come.
    text = f"coalesce({field.sql}, '')" if field.nullable else field.sql
    return escaped_text_sql(text), True


def csv_copy_statement(select: str, quoted: Sequence[str]) -> str:
    # The quote of every non-NULL value of the text columns; CRLF is added row by row.
    return f"COPY ({select}) TO STDOUT (FORMAT csv, FORCE_QUOTE ({', '.join(quoted)}))"


def jsonl_copy_statement(select: str) -> str:
    # Binary: each document comes out as it is (text mode would double its backslashes), and
    # PostgreSQL copies it without looking for characters to quote (csv mode did, at 10% of
    # the export's CPU).
    return f"COPY ({select}) TO STDOUT (FORMAT binary)"


# Binary COPY: the file header (signature, no flags, no extension) before the first row; each
# row of one non-NULL field: the field count, the value's length, the value; the trailer.
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_ONE_FIELD = b"\x00\x01"
_NULL = b"\xff\xff\xff\xff"  # the length of a NULL value
_ROW_HEADER_BYTES = 6
_BINARY_TRAILER = b"\xff\xff"


# The file.


class _Progress:
    """Rows written so far, reported as they go: percent of `total`, and the count itself."""

    def __init__(
        self, total: int, on_progress: Callable[[int], None], on_rows: Callable[[int], None]
    ) -> None:
        self.total = max(total, 1)
        self.count = 0
        self._on_progress = on_progress
        self._on_rows = on_rows

    def add(self, rows: int) -> None:
        self.count += rows
        self._on_rows(self.count)
        # 100 is for the finished file, once it is closed.
        self._on_progress(min(99, self.count * 100 // self.total))


def _driver(connection: Connection) -> psycopg.Connection[Any]:
    driver: psycopg.Connection[Any] = connection.connection.driver_connection  # type: ignore[assignment]
    return driver


def _scalars(connection: Connection, statement: str, params: dict[str, Any]) -> list[int | None]:
    """The one row of a statement of counts."""
    with _driver(connection).cursor() as cursor:
        row = cursor.execute(statement, params).fetchone()
    assert row is not None  # an aggregate without GROUP BY always has its row
    return [None if value is None else int(value) for value in row]


class _Digested:
    """`out`, written straight through, with the SHA-256 of what went through: the job's digest
    without reading the file back (0.5 s for a 200 MB jsonl file), while PostgreSQL is still
    writing the rows. Only for files written front to back, never seeked (not xlsx)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._digest = hashlib.sha256()

    def write(self, data: bytes | bytearray) -> None:
        self._digest.update(data)
        self._out.write(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class _Writer(Protocol):
    def write(self, data: bytes | bytearray, /) -> object: ...


def _copy_rows(
    connection: Connection,
    statement: str,
    params: dict[str, Any],
    out: _Writer,
    on_rows: Callable[[int], None],
    *,
    jsonl: bool,
) -> None:
    """COPY's rows (one per chunk, each ending in LF) into `out`, FLUSH_BYTES at a time: CSV
    records with CRLF instead (RFC 4180), or jsonl documents from a binary COPY, each followed
    by LF. `on_rows` hears how many rows each write held."""
    buffer = bytearray()
    rows = 0
    with _driver(connection).cursor() as cursor, cursor.copy(statement, params) as copy:
        for chunk in copy:
            if jsonl:
                if rows == 0 and chunk[: len(_BINARY_HEADER)] == _BINARY_HEADER:
                    chunk = chunk[len(_BINARY_HEADER) :]  # the first row's message holds it
                if chunk == _BINARY_TRAILER:
                    continue
                if chunk[:2] != _ONE_FIELD or chunk[2:_ROW_HEADER_BYTES] == _NULL:
                    raise ValueError("a jsonl row of a bulk export is not one document")
                start = len(buffer)
                buffer += chunk[_ROW_HEADER_BYTES:]
                # JSON escapes every control character: a raw one would break the line.
                if buffer.find(LF, start) != -1:
                    raise ValueError("a JSON document held a raw line break")
                buffer += LF
            else:
                buffer += chunk[:-1]
                buffer += CRLF
            rows += 1
            if len(buffer) >= FLUSH_BYTES:
                out.write(buffer)
                buffer.clear()
                on_rows(rows)  # the job's progress: raises JobLost once it was canceled
                rows = 0
    out.write(buffer)
    on_rows(rows)


class _SecondHalf:
    """The file's second half (the customers from the middle id on), written by a second
    PostgreSQL backend into a spill file while the first backend writes the first half: one
    backend builds rows on one core. Made by `_second_half`.

    Its rows are counted as they come (`take`, for the job's progress); `append` waits for the
    end and adds the spill to the file."""

    def __init__(
        self,
        connection: Connection,
        statement: str,
        params: dict[str, Any],
        spill: BinaryIO,
        *,
        jsonl: bool,
    ) -> None:
        self._connection = connection
        self._statement = statement
        self._params = params
        self._spill = spill
        self._jsonl = jsonl
        self._lock = threading.Lock()
        self._new_rows = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._copy, name="bulk-second-half", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Cancel the query if it still runs (the first half failed, the job was canceled)."""
        if self._thread.is_alive():
            _driver(self._connection).cancel()
            self._thread.join()

    def _copy(self) -> None:
        try:
            _copy_rows(
                self._connection,
                self._statement,
                self._params,
                self._spill,
                self._count,
                jsonl=self._jsonl,
            )
        except BaseException as error:  # raised in the job's thread, by take()
            self._error = error

    def _count(self, rows: int) -> None:
        with self._lock:
            self._new_rows += rows

    def take(self) -> int:
        """The rows written since the last call; the second half's failure, if it failed."""
        if self._error is not None:
            raise self._error
        with self._lock:
            rows, self._new_rows = self._new_rows, 0
        return rows

    def append(self, out: _Writer, progress: _Progress) -> None:
        while self._thread.is_alive():
            self._thread.join(timeout=0.5)
            progress.add(self.take())  # raises JobLost once the job was canceled
        progress.add(self.take())
        self._spill.seek(0)
        while chunk := self._spill.read(1024 * 1024):
            out.write(chunk)


@contextmanager
def _second_half(
    connection: Connection,
    selection: Selection,
    statement: str,
    params: dict[str, Any],
    *,
    jsonl: bool,
) -> Iterator[_SecondHalf]:
    """A `_SecondHalf` running on a connection of its own that reads `connection`'s very
    snapshot (pg_export_snapshot) with the same settings; stopped when the block ends."""
    row = (
        _driver(connection)
        .execute("SELECT pg_export_snapshot(), current_setting('statement_timeout')")
        .fetchone()
    )
    assert row is not None
    snapshot, statement_timeout = row
    with connection.engine.connect() as other, tempfile.TemporaryFile() as spill:
        other.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with other.begin():
            # First in its transaction, as PostgreSQL wants it.
            set_snapshot = psycopg.sql.SQL("SET TRANSACTION SNAPSHOT {}")
            _driver(other).execute(set_snapshot.format(psycopg.sql.Literal(snapshot)))
            _plan_settings(other, selection, statement_timeout=statement_timeout)
            half = _SecondHalf(other, statement, params, spill, jsonl=jsonl)
            half.start()
            try:
                yield half
            finally:
                half.stop()


@dataclass(frozen=True, slots=True)
class _CopiedFile:
    """A csv or jsonl file's rows, which PostgreSQL writes: the selection's customers, by id."""

    connection: Connection
    selection: Selection
    where: str
    params: dict[str, Any]
    jsonl: bool

    def write(
        self,
        statement: Callable[[str], str],
        out: _Writer,
        progress: _Progress,
        *,
        halves_from: int | None,
    ) -> None:
        """`statement(condition)`'s rows into `out`: all at once, or, given the middle
        customer's id, as two halves written at the same time by two backends."""
        if halves_from is None:
            _copy_rows(
                self.connection,
                statement(self.where),
                self.params,
                out,
                progress.add,
                jsonl=self.jsonl,
            )
            return
        params = self.params | {"middle": halves_from}
        second = statement(f"({self.where}) AND c.id >= %(middle)s")
        with _second_half(
            self.connection, self.selection, second, params, jsonl=self.jsonl
        ) as other:
            first = statement(f"({self.where}) AND c.id < %(middle)s")

            def count(rows: int) -> None:
                progress.add(rows + other.take())

            _copy_rows(self.connection, first, params, out, count, jsonl=self.jsonl)
            other.append(out, progress)


@contextmanager
def _typed_rows(
    connection: Connection, statement: str, params: dict[str, Any], progress: _Progress
) -> Iterator[Iterator[Sequence[Value]]]:
    """The rows as Python values (for the excel renderer), counted as they are taken."""
    with queries.streamed_sql(connection, statement, params) as stream:

        def counted() -> Iterator[Sequence[Value]]:
            taken = 0
            for row in stream:
                yield row
                taken += 1
                if taken == queries.STREAM_BATCH_ROWS:
                    progress.add(taken)
                    taken = 0
            progress.add(taken)

        yield counted()


def _plan_settings(
    connection: Connection, selection: Selection, *, statement_timeout: str | None = None
) -> None:
    """This transaction's settings for the export's statements."""
    settings = {
        # The plans are quick to run and slow to compile: JIT took 3.4 s of a 9 s export.
        "jit": "off",
        # A timestamp as text is then "2026-10-27 14:05:00", as renderers.plain_text writes it.
        "datestyle": "ISO, YMD",
        "work_mem": BULK_WORK_MEM,
        # Parallel plans made each process repeat the whole totals aggregate (every-customer
        # csv) or the list's hash table (PostgreSQL guesses a list small): more CPU, no sooner.
        "max_parallel_workers_per_gather": "0",
    }
    if selection.long_list:
        # Hash joins for the list: PostgreSQL, guessing 10 entries, would probe per entry. A
        # jsonl line's purchases stay a nested loop (a lateral subquery has no other plan).
        settings["enable_nestloop"] = "off"
    if statement_timeout is not None:
        settings["statement_timeout"] = statement_timeout
    queries.set_local(connection, settings)


def _parameters(params: BulkExportParams, not_found: int | None) -> list[tuple[str, Value]]:
    f = params.filtro
    entries: list[tuple[str, Value]] = [
        ("Formato", params.formato),
        ("Una fila por compra", "sí" if params.incluir_compras else "no"),
    ]
    if f.ids is not None:
        entries.append(("Filtro: ids (cantidad)", f.ids))
    if f.documentos is not None:
        entries.append(("Filtro: documentos (cantidad)", f.documentos))
        entries.append(("Documentos no encontrados", not_found))
    for name in ("q", "tipo_documento"):
        if (value := getattr(f, name)) is not None:
            entries.append((f"Filtro: {name}", value))
    if f.activo is not None:
        entries.append(("Filtro: activo", "sí" if f.activo else "no"))
    for name in ("registrados_desde", "registrados_hasta", "compras_desde", "compras_hasta"):
        if (moment := getattr(f, name)) is not None:
            entries.append((f"Filtro: {name}", moment))
    return entries


def filename(
    params: BulkExportParams, job_id: uuid.UUID, generated_at: datetime, tz: ZoneInfo
) -> str:
    extension = file_formats.BY_FORMATO[params.formato].extension
    day = generated_at.astimezone(tz).date().isoformat()
    return f"exportacion_masiva_{day}_{job_id.hex[:8]}.{extension}"


def render_exportacion_masiva(
    connection: Connection,
    *,
    job_id: uuid.UUID,
    params: BulkExportParams,
    out: BinaryIO,
    generated_at: datetime,
    timezone: ZoneInfo,
    on_progress: Callable[[int], None],
    on_rows: Callable[[int], None],
    split_min_rows: int = SPLIT_MIN_ROWS,
) -> exports.RenderedFile:
    """The job's file: the selected customers by id, one row each or one per purchase; the
    documents that matched nothing are counted (`not_found`). A csv or jsonl file of
    `split_min_rows` rows or more is written in two halves at once."""
    on_progress(0)
    selection = Selection(job_id, params.filtro)
    _plan_settings(connection, selection)
    where, params_sql = selection.where()
    params_sql |= {"timezone": timezone.key}
    incluir = params.incluir_compras
    jsonl = params.formato == "jsonl"
    # jsonl has one line per customer, purchases or not.
    rows_per_purchase = incluir and not jsonl
    not_found = None
    if params.filtro.documentos is not None:
        others, others_params = selection.where(documentos=False)
        statement = documents_count_statement(others, rows_per_purchase)
        not_found, total, middle = _scalars(connection, statement, others_params)
    else:
        statement = count_statement(where, rows_per_purchase)
        total, middle = _scalars(connection, statement, params_sql)
    assert total is not None  # a sum made not NULL
    progress = _Progress(total, on_progress, on_rows)
    on_rows(0)
    fields = (*CLIENTE_FIELDS, *(COMPRA_FIELDS if incluir else ()))
    digested = _Digested(out)
    sha256 = None
    halves_from = middle if total >= split_min_rows else None
    if jsonl:

        def jsonl_rows(condition: str) -> str:
            return jsonl_copy_statement(jsonl_statement(condition, incluir_compras=incluir))

        file = _CopiedFile(connection, selection, where, params_sql, jsonl=True)
        file.write(jsonl_rows, digested, progress, halves_from=halves_from)
        content_type = file_formats.JSONL.content_type
        sha256 = digested.hexdigest()
    elif params.formato == "csv":
        header = Document(
            title="Exportación masiva",
            sheet_name="Clientes",
            columns=[field.column for field in fields],
            rows=(),
            parameters=(),
            generated_at=generated_at,
            timezone=timezone,
        )
        header_bytes = io.BytesIO()
        csv_renderer.render(header, header_bytes)  # the BOM and the header row, as every csv
        digested.write(header_bytes.getvalue())
        columns = [csv_field_sql(field) for field in fields]
        names = [f"f{index}" for index in range(len(columns))]
        named = [f"{sql} AS {name}" for (sql, _), name in zip(columns, names, strict=True)]
        quoted = [name for (_, quote), name in zip(columns, names, strict=True) if quote]

        def csv_rows(condition: str) -> str:
            select = rows_statement(condition, named, incluir_compras=incluir)
            return csv_copy_statement(select, quoted)

        file = _CopiedFile(connection, selection, where, params_sql, jsonl=False)
        file.write(csv_rows, digested, progress, halves_from=halves_from)
        content_type = csv_renderer.FILE_FORMAT.content_type
        sha256 = digested.hexdigest()
    else:
        sqls = [field.sql for field in fields]
        select = rows_statement(where, sqls, incluir_compras=incluir)
        with _typed_rows(connection, select, params_sql, progress) as rows:
            document = Document(
                title="Exportación masiva",
                sheet_name="Clientes",
                columns=[field.column for field in fields],
                rows=rows,
                parameters=_parameters(params, not_found),
                generated_at=generated_at,
                timezone=timezone,
            )
            excel_renderer.render(document, out)
        content_type = excel_renderer.FILE_FORMAT.content_type
    on_progress(100)
    return exports.RenderedFile(
        filename=filename(params, job_id, generated_at, timezone),
        content_type=content_type,
        row_count=progress.count,
        not_found=not_found,
        sha256=sha256,
    )

"""One run in one transaction: plan it, COPY the generated rows into PostgreSQL, and rebuild the
indexes and constraints a bulk load dropped."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import psycopg
from psycopg.copy import QueuedLibpqWriter
from psycopg.rows import TupleRow
from sqlalchemy import ForeignKeyConstraint, Table, UniqueConstraint
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import (
    AddConstraint,
    CreateIndex,
    DropConstraint,
    DropIndex,
    ExecutableDDLElement,
)

from shared import documents
from shared.models import CLIENTES_TOTALES_RECOUNT, CLIENTES_TOTALES_TRIGGERS, Base
from shared.seed.generation import (
    COPY_BLOCK_LINES,
    REGISTRATION_DAYS,
    TYPE_CODES,
    NewCliente,
    Plan,
    clientes_chunk,
    compras_blocks,
    purchases_bound,
)
from shared.seed.vocabulary import Calendar, build_pools
from shared.settings import get_settings

BULK_THRESHOLD = 20_000
BULK_MAINTENANCE_WORK_MEM = "512MB"  # index builds sort in memory instead of on disk
# No statement timeout: rebuilding the indexes of a large load takes minutes.
CONNECT: dict[str, Any] = {"connect_timeout": 10, "options": "-c statement_timeout=0"}

COPY_CLIENTES = (
    "COPY clientes (id, tipo_documento_id, numero_documento, nombre, apellido, correo,"
    " telefono, fecha_registro, activo) FROM STDIN"
)
COPY_COMPRAS = (
    "COPY compras (id, cliente_id, numero_factura, fecha_compra, monto, descripcion, estado)"
    " FROM STDIN"
)


class SeedError(Exception):
    """A problem the user can act on, reported in one line."""


Ddl = list[tuple[str, str]]  # (what, SQL)
Cursor = psycopg.Cursor[TupleRow]


def _bulk_ddl() -> tuple[Ddl, Ddl]:
    """What a bulk COPY drops first and rebuilds after, as shared.models defines it.

    Every index and every unique and foreign-key constraint of clientes and compras; the primary
    keys (the foreign key needs them) and the cheap check constraints stay. The triggers that
    keep clientes_totales are off meanwhile; the totals are counted once after.
    """
    drops: list[tuple[str, ExecutableDDLElement]] = []
    indexes: list[tuple[str, ExecutableDDLElement]] = []
    uniques: list[tuple[str, ExecutableDDLElement]] = []
    foreign_keys: list[tuple[str, ExecutableDDLElement]] = []
    for table_name in ("clientes", "compras"):
        table: Table = Base.metadata.tables[table_name]
        for constraint in sorted(table.constraints, key=lambda constraint: str(constraint.name)):
            if isinstance(constraint, ForeignKeyConstraint | UniqueConstraint):
                drops.append((str(constraint.name), DropConstraint(constraint)))
                rebuilt = foreign_keys if isinstance(constraint, ForeignKeyConstraint) else uniques
                rebuilt.append((str(constraint.name), AddConstraint(constraint)))
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            drops.append((str(index.name), DropIndex(index)))
            indexes.append((str(index.name), CreateIndex(index)))
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def compiled(ddl: list[tuple[str, ExecutableDDLElement]]) -> Ddl:
        return [(name, str(element.compile(dialect=dialect)).strip()) for name, element in ddl]

    # The purchases' totals: counted once after the load, not by the triggers over a transition
    # table of every row the COPY wrote.
    triggers = [
        (name, f"ALTER TABLE compras {{}} TRIGGER {name}") for name in CLIENTES_TOTALES_TRIGGERS
    ]
    disable = [(name, statement.format("DISABLE")) for name, statement in triggers]
    totals = [("clientes_totales", CLIENTES_TOTALES_RECOUNT.strip())]
    enable = [(name, statement.format("ENABLE")) for name, statement in triggers]
    # Foreign keys last: each is then checked against the finished tables in a single join.
    return (
        compiled(drops) + disable,
        compiled(indexes + uniques + foreign_keys) + totals + enable,
    )


@dataclass(frozen=True, slots=True)
class Options:
    clientes: int
    compras_por_cliente: int
    seed: int
    reset: bool
    bulk_threshold: int


@dataclass(frozen=True, slots=True)
class Existing:
    """Where the tables stand before the load: new ids continue after these."""

    last_cliente_id: int = 0
    last_compra_id: int = 0

    @property
    def empty(self) -> bool:
        return self.last_cliente_id == 0 and self.last_compra_id == 0

    @classmethod
    def read(cls, cursor: Cursor) -> Existing:
        return cls(
            _scalar(cursor, "SELECT COALESCE(max(id), 0) FROM clientes"),
            _scalar(cursor, "SELECT COALESCE(max(id), 0) FROM compras"),
        )


def _free_facturas(cursor: Cursor, first: int, count: int) -> int:
    """The first of `count` consecutive invoice numbers, from first on, that no row holds.

    Seeded invoices are FV- and the purchase id, so the numbers after the highest id are free,
    unless someone typed an FV- number in by hand: then start after it. Each check is one range
    scan of the unique index per number width (same-width digit strings sort like numbers in
    any collation; other widths in the range are filtered out).
    """
    while True:
        last = first + count - 1
        taken = None
        for width in range(len(f"{first:08d}"), len(f"{last:08d}") + 1):
            low = max(first, 10 ** (width - 1) if width > 8 else 0)
            high = min(last, 10**width - 1)
            row = cursor.execute(
                "SELECT max(numero_factura) FROM compras WHERE numero_factura BETWEEN %s AND %s"
                " AND length(numero_factura) = %s AND numero_factura ~ '^FV-[0-9]+$'",
                (f"FV-{low:0{width}d}", f"FV-{high:0{width}d}", width + 3),
            ).fetchone()
            if row is not None and row[0] is not None:
                taken = int(row[0][3:])
        if taken is None:
            return first
        first = taken + 1


def _scalar(cursor: Cursor, query: str) -> int:
    row = cursor.execute(query).fetchone()
    assert row is not None
    return int(row[0])


def _tipos(cursor: Cursor) -> dict[str, int]:
    rows = cursor.execute("SELECT codigo, id FROM tipos_documento").fetchall()
    tipos = {str(codigo): int(tipo_id) for codigo, tipo_id in rows}
    missing = [codigo for codigo in TYPE_CODES if codigo not in tipos]
    if missing:
        raise SeedError(f"tipos_documento lacks {', '.join(missing)}: run `alembic upgrade head`")
    return tipos


def _claim_free_numbers(lookup: Cursor, tipos: dict[str, int], rows: list[NewCliente]) -> None:
    """Move customers whose number another customer (entered by hand, say) already holds to
    their next candidate. Seeded customers never collide with each other: see the module doc."""
    pending = rows
    while pending:
        taken: set[tuple[str, str]] = set()
        for codigo in {row.codigo for row in pending}:
            numeros = [row.numero for row in pending if row.codigo == codigo]
            lookup.execute(
                "SELECT numero_documento FROM clientes"
                " WHERE tipo_documento_id = %s AND numero_documento = ANY(%s)",
                (tipos[codigo], numeros),
            )
            taken.update((codigo, str(numero)) for (numero,) in lookup)
        pending = [row for row in pending if (row.codigo, row.numero) in taken]
        for row in pending:
            alternatives = list(documents.candidates(row.codigo, row.id, row.pick))
            position = alternatives.index(row.numero) + 1
            if position == len(alternatives):
                raise SeedError(f"every {row.codigo} number for customer id {row.id} is taken")
            row.numero = alternatives[position]


class Progress:
    """A one-line progress bar on stderr; without a terminal, a plain line at each quarter."""

    WIDTH = 30

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr) -> None:
        self.label, self.total, self.stream = label, max(total, 1), stream
        self.interactive = stream.isatty()
        self.shown = -1 if self.interactive else 0  # the first plain line at 25 %
        self.started = time.perf_counter()

    def update(self, done: int) -> None:
        percent = min(100, done * 100 // self.total)
        step = percent if self.interactive else percent // 25 * 25
        if step == self.shown:
            return
        self.shown = step
        filled = self.WIDTH * percent // 100
        bar = "#" * filled + "." * (self.WIDTH - filled)
        elapsed = time.perf_counter() - self.started
        text = f"{self.label:<10} [{bar}] {percent:3d}% {done:,}/{self.total:,} {elapsed:.1f}s"
        if self.interactive:
            self.stream.write("\r" + text + ("\n" if percent == 100 else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _clientes_blocks(
    plan: Plan, lookup: Cursor | None, examples: list[NewCliente]
) -> Iterator[str]:
    """New customers as COPY text. The first two of them go to examples (the loyal one first)."""
    pools = build_pools(plan.seed)
    progress = Progress("customers", plan.clientes)
    for chunk in plan.chunks:
        rows = clientes_chunk(plan, pools, chunk)
        if lookup is not None:
            _claim_free_numbers(lookup, plan.tipos, rows)
        if chunk == 0:
            examples += [rows[0], next((row for row in rows[1:] if row.activo), rows[0])]
        for start in range(0, len(rows), COPY_BLOCK_LINES):
            yield "".join(row.line(plan.tipos) for row in rows[start : start + COPY_BLOCK_LINES])
        progress.update(plan.cliente_ids(chunk).stop - plan.first_cliente_id)


@dataclass(slots=True)
class Streamed:
    rows: int = 0
    seconds: float = 0.0
    waiting: float = 0.0  # of which Python waited for the server rather than generating rows


def _stream(cursor: Cursor, statement: str, blocks: Iterator[str]) -> Streamed:
    """COPY blocks through psycopg's queued writer: a thread sends each block to the server while
    Python formats the next one (write only blocks when the queue is full)."""
    streamed = Streamed()
    started = time.perf_counter()
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        for block in blocks:
            streamed.rows += block.count("\n")
            before = time.perf_counter()
            copy.write(block)
            streamed.waiting += time.perf_counter() - before
        before = time.perf_counter()
    streamed.waiting += time.perf_counter() - before  # the queue draining at the end
    streamed.seconds = time.perf_counter() - started
    return streamed


def _rebuild(cursor: Cursor, ddl: Ddl) -> float:
    """Recreate what a bulk load dropped, each reported on stderr: at 10,000,000 rows it takes
    a minute or two."""
    started = time.perf_counter()
    for name, statement in ddl:
        before = time.perf_counter()
        cursor.execute(statement)
        print(f"rebuilt {name}: {time.perf_counter() - before:.1f}s", file=sys.stderr)
    return time.perf_counter() - started


@dataclass(frozen=True, slots=True)
class Outcome:
    plan: Plan
    bulk: bool
    clientes: Streamed
    compras: Streamed
    rebuild_seconds: float
    analyze_seconds: float
    clientes_total: int
    compras_total: int
    loyal: NewCliente
    example: NewCliente


def _prepare(cursor: Cursor, options: Options) -> tuple[Plan, Existing, bool]:
    """Lock the tables, see where new ids start, and clear the way for a bulk load if it is one."""
    # Concurrent runs wait for each other (they would pick the same new ids); reads go on.
    cursor.execute("LOCK TABLE clientes, compras IN SHARE ROW EXCLUSIVE MODE")
    tipos = _tipos(cursor)
    existing = Existing() if options.reset else Existing.read(cursor)
    bulk = existing.empty and options.clientes >= options.bulk_threshold
    if options.reset or bulk:
        # Truncating in this transaction also lets COPY FREEZE store the rows frozen.
        restart = " RESTART IDENTITY" if options.reset else ""
        cursor.execute(f"TRUNCATE clientes, compras{restart}")
    if bulk:
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{BULK_MAINTENANCE_WORK_MEM}'")
        for _, statement in _bulk_ddl()[0]:
            cursor.execute(statement)
    today_start = datetime.now(ZoneInfo(get_settings().timezone)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    plan = Plan(
        clientes=options.clientes,
        compras_por_cliente=options.compras_por_cliente,
        seed=options.seed,
        first_cliente_id=existing.last_cliente_id + 1,
        first_compra_id=existing.last_compra_id + 1,
        first_factura=_free_facturas(
            cursor,
            existing.last_compra_id + 1,
            purchases_bound(options.clientes, options.compras_por_cliente),
        ),
        tipos=tipos,
        calendar=Calendar.ending(today_start, REGISTRATION_DAYS[1]),
    )
    return plan, existing, bulk


def seed(database_url: str, options: Options) -> Outcome:
    """Generate and load one run in a single transaction."""
    with psycopg.connect(database_url, application_name="seed_data", **CONNECT) as connection:
        cursor = connection.cursor()
        plan, existing, bulk = _prepare(cursor, options)
        freeze = " WITH (FREEZE)" if bulk else ""
        examples: list[NewCliente] = []
        with ExitStack() as stack:
            lookup = None
            if not existing.empty:
                # Numbers held by customers entered by other means are looked up on a second
                # connection, the first being busy with COPY. What it sees, the committed rows,
                # is all that can collide.
                lookup = stack.enter_context(
                    psycopg.connect(database_url, autocommit=True, **CONNECT)
                ).cursor()
            clientes = _stream(
                cursor, COPY_CLIENTES + freeze, _clientes_blocks(plan, lookup, examples)
            )
        progress = Progress("purchases", plan.clientes)
        compras = _stream(
            cursor,
            COPY_COMPRAS + freeze,
            compras_blocks(
                plan,
                lambda chunk: progress.update(plan.cliente_ids(chunk).stop - plan.first_cliente_id),
            ),
        )
        rebuild_seconds = _rebuild(cursor, _bulk_ddl()[1]) if bulk else 0.0
        # Rows added later by other means take the ids after the seeded ones.
        for table, last_id in (
            ("clientes", plan.first_cliente_id + clientes.rows - 1),
            ("compras", plan.first_compra_id + compras.rows - 1),
        ):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", (table, last_id))
        started = time.perf_counter()
        cursor.execute("ANALYZE clientes, compras")
        analyze_seconds = time.perf_counter() - started
        return Outcome(
            plan=plan,
            bulk=bulk,
            clientes=clientes,
            compras=compras,
            rebuild_seconds=rebuild_seconds,
            analyze_seconds=analyze_seconds,
            clientes_total=_scalar(cursor, "SELECT count(*) FROM clientes"),
            compras_total=_scalar(cursor, "SELECT count(*) FROM compras"),
            loyal=examples[0],
            example=examples[1],
        )

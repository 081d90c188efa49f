"""The every-customer csv report split into its parts, in the bench process, same data, same run.

Two paths write the same file (tests/worker/test_csv_records.py holds them to the same bytes):
- the worker's: PostgreSQL writes each CSV record (`csv.sql_record`: quoting, formula escaping,
  CRLF) and the worker joins them after the header;
- the one before it, the baseline: PostgreSQL sends the values, psycopg makes Python objects of
  them and the csv module writes them (`csv.render`; the xlsx report still reads rows this way).

Each run times, in one pass: statement sent → the first block of rows in Python (PostgreSQL's
aggregate, join and sort: nothing comes out of a sort before it has every row), the fetch of the
other rows (the driver), and the write (the renderer: what is left). EXPLAIN ANALYZE of the
worker's statement, run apart, says where PostgreSQL's part goes.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, create_engine
from sqlalchemy.dialects.postgresql.base import PGDialect

from services.export_worker import exports, queries
from services.export_worker.renderers import Document
from services.export_worker.renderers import csv as csv_renderer
from shared.job_params import ReportParams
from shared.settings import get_settings, to_psycopg_url

BLOCK_ROWS = 2000
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Split:
    first_rows: float  # statement sent → the first rows in Python: PostgreSQL's part
    fetch: float  # the driver bringing the other rows into Python
    write: float  # the renderer
    total: float
    rows: int
    size_bytes: int


class _Timed:
    """The rows, fetched a block at a time: the time spent fetching is counted apart from the
    time the consumer (the renderer) spends between two blocks."""

    def __init__(self, rows: Iterable[T]) -> None:
        self._rows = rows
        self.first_rows: float | None = None
        self.fetch = 0.0
        self.rows = 0

    def __iter__(self) -> Iterator[Any]:
        rows = iter(self._rows)
        while True:
            started = time.perf_counter()
            block = list(itertools.islice(rows, BLOCK_ROWS))
            elapsed = time.perf_counter() - started
            if self.first_rows is None:
                self.first_rows = elapsed
            else:
                self.fetch += elapsed
            if not block:
                return
            self.rows += len(block)
            yield from block


def _python_values(connection: Connection, rule: queries.LoyaltyRule, out: BinaryIO) -> _Timed:
    with queries.reporte_fidelizacion(connection, rule) as rows:
        timed = _Timed(rows)
        document = Document(
            title="Reporte de fidelización",
            sheet_name="Reporte",
            columns=exports.REPORTE_COLUMNS,
            rows=(row[:-1] for row in timed),
            parameters=[],
            generated_at=datetime.now(UTC),
            timezone=ZoneInfo(get_settings().timezone),
        )
        csv_renderer.render(document, out)
    return timed


def _postgresql_records(connection: Connection, rule: queries.LoyaltyRule, out: BinaryIO) -> _Timed:
    records = queries.reporte_fidelizacion_records(connection, rule, exports.csv_report_record)
    with records as rows:
        timed = _Timed(rows)
        csv_renderer.write_records(exports.REPORTE_COLUMNS, (record for record, _ in timed), out)
    return timed


PATHS: Mapping[str, Callable[[Connection, queries.LoyaltyRule, BinaryIO], _Timed]] = {
    "python_values": _python_values,
    "postgresql_records": _postgresql_records,
}


def rule_of(job_params: Mapping[str, Any]) -> queries.LoyaltyRule:
    params = ReportParams.from_json(job_params, ZoneInfo(get_settings().timezone))
    return queries.LoyaltyRule(params.desde, params.hasta, params.monto_minimo)


def _connect(database_url: str) -> Any:
    # The workers' session settings (shared.db): UTC, so timestamps compare the same way.
    return create_engine(
        to_psycopg_url(database_url), connect_args={"options": "-c timezone=UTC"}
    ).connect()


def measure(database_url: str, job_params: Mapping[str, Any], path: str, file: Path) -> Split:
    """One render of the report by `path` (a key of PATHS) into `file`, as the worker renders
    it: a read-only REPEATABLE READ transaction."""
    rule = rule_of(job_params)
    with _connect(database_url) as connection, file.open("wb") as out:
        connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with connection.begin():
            started = time.perf_counter()
            timed = PATHS[path](connection, rule, out)
            total = time.perf_counter() - started
    first_rows = timed.first_rows or 0.0
    return Split(
        first_rows=first_rows,
        fetch=timed.fetch,
        write=total - first_rows - timed.fetch,
        total=total,
        rows=timed.rows,
        size_bytes=file.stat().st_size,
    )


@dataclass(frozen=True, slots=True)
class Plan:
    execution_seconds: float
    summary: str  # one line: parallel workers, how the aggregate and the sort ran
    text: str


_PLAN_FACTS = (
    re.compile(r"Workers Launched: \d+"),
    re.compile(r"(?:Finalize |Partial )?(?:Hash|Group|Mixed)Aggregate"),
    re.compile(r"Batches: \d+ +Memory Usage: \d+kB(?: +Disk Usage: \d+kB)?"),
    re.compile(r"Sort Method: [^\n]+"),
    re.compile(r"Parallel Seq Scan on compras|Index Only Scan[^\n]*"),
    re.compile(r"JIT:\n[^\n]*\n[^\n]*\n +Timing:[^\n]*Total [0-9.]+ ms"),
)


def explain(database_url: str, job_params: Mapping[str, Any]) -> Plan:
    """EXPLAIN ANALYZE of the worker's statement (records made, not sent), with the worker's
    transaction settings."""
    statement = queries.reporte_fidelizacion_records_statement(
        rule_of(job_params), exports.csv_report_record
    )
    dialect = PGDialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's dialects are untyped
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    with _connect(database_url) as connection, connection.begin():
        queries.prepare_report_transaction(connection)
        # Literal values and no parameters: sent as it is (its `%s` are format()'s).
        lines = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = "\n".join(line for (line,) in lines)
    found = re.search(r"Execution Time: ([0-9.]+) ms", plan)
    facts: list[str] = []
    for pattern in _PLAN_FACTS:
        for match in pattern.findall(plan):
            fact = " ".join(match.split())
            if fact not in facts:
                facts.append(fact)
    return Plan(float(found.group(1)) / 1000 if found else 0.0, "; ".join(facts), plan)

"""By hand, not part of the suite: the loyalty report's peak memory and speed at scale.

    .venv/bin/python -m bench.memory_check_reports            # 200,000 report rows
    .venv/bin/python -m bench.memory_check_reports --rows 50000

Builds a throwaway database (Alembic `upgrade head`), fills it with `generate_series`: every
customer has two completed purchases in the window, so all of them qualify, plus a pending
one and one outside the window that the report must skip. It prints the query plan, then
renders each format at a tenth of the rows and at all of them, each in a fresh process, so
that the peak RSS of one run cannot hide another's. Flat memory: the two peaks are close.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, text

from harness.databases import throwaway_database
from services.export_worker import exports, queries
from shared.settings import to_psycopg_url

DESDE = datetime(2026, 10, 1, tzinfo=UTC)
HASTA = datetime(2026, 11, 1, tzinfo=UTC)
BASE_TOTAL = Decimal("6000000.00")  # customer i spends BASE_TOTAL + i in the window

FILL = """
INSERT INTO clientes (tipo_documento_id, numero_documento, nombre, apellido, correo, telefono)
SELECT (SELECT id FROM tipos_documento WHERE codigo = 'CC'), (1000000000 + g)::text,
       'Nombre ' || g, 'Apellido Núñez ' || g, 'cliente' || g || '@example.com',
       '+57 300 ' || lpad(g::text, 7, '0')
FROM generate_series(1, :rows) AS g;

INSERT INTO compras (cliente_id, numero_factura, fecha_compra, monto, descripcion, estado)
SELECT c.id, 'F-' || c.id || '-' || k,
       CASE k WHEN 4 THEN timestamptz '2026-08-01' ELSE timestamptz '2026-10-02' END
         + (c.id % 2500000) * interval '1 second',
       CASE k WHEN 2 THEN 3000000 + c.id ELSE 3000000 END,
       'Compra ' || k,
       CASE k WHEN 3 THEN 'pendiente' ELSE 'completada' END
FROM clientes AS c, generate_series(1, 4) AS k;
"""


@dataclass(frozen=True)
class Measure:
    formato: str
    rows: int
    seconds: float
    cpu_seconds: float  # of this process alone: the machine may be busy with others
    peak_rss_mb: float
    baseline_rss_mb: float
    size_mb: float


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _render(database_url: str, formato: str, monto_minimo: Decimal) -> Measure:
    """Runs in a fresh process."""
    engine = create_engine(to_psycopg_url(database_url))
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
        baseline = _peak_rss_mb()
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "report"
            started, cpu_started = time.perf_counter(), _cpu_seconds()
            with path.open("wb") as out:
                rendered = exports.render_reporte_fidelizacion(
                    connection,
                    desde=DESDE,
                    hasta=HASTA,
                    monto_minimo=monto_minimo,
                    formato=formato,
                    out=out,
                    generated_at=datetime.now(UTC),
                )
            seconds = time.perf_counter() - started
            cpu_seconds = _cpu_seconds() - cpu_started
            size = path.stat().st_size / 2**20
    return Measure(
        formato, rendered.row_count, seconds, cpu_seconds, _peak_rss_mb(), baseline, size
    )


def _fill(database_url: str, rows: int) -> None:
    engine = create_engine(to_psycopg_url(database_url))
    with engine.begin() as connection:
        for statement in FILL.split(";"):
            if statement.strip():
                connection.execute(text(statement), {"rows": rows})
    # The visibility map lets the aggregate read the index alone (index-only scan).
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE clientes, compras"))
    engine.dispose()


def _print_plan(database_url: str) -> None:
    rule = queries.LoyaltyRule(desde=DESDE, hasta=HASTA, monto_minimo=BASE_TOTAL)
    engine = create_engine(to_psycopg_url(database_url))
    with engine.connect() as connection:
        queries.prepare_report_transaction(connection)
        compiled = queries.reporte_fidelizacion_statement(rule).compile(connection)
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + str(compiled), compiled.params
        ).scalars()
        print("\n".join(plan))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    rows = parser.parse_args().rows
    with throwaway_database("clientes_memcheck") as database_url:
        started = time.perf_counter()
        _fill(database_url, rows)
        elapsed = time.perf_counter() - started
        print(f"filled {rows:,} customers, {4 * rows:,} purchases in {elapsed:.1f} s\n")
        _print_plan(database_url)
        spawn = multiprocessing.get_context("spawn")
        columns = ("rows", "seconds", "cpu s", "rows/cpu s", "peak RSS", "baseline", "file")
        print("\nformato  " + " ".join(f"{column:>9}" for column in columns))
        for formato in ("csv", "excel"):
            for share in (10, 1):  # a tenth of the rows, then all of them
                minimo = BASE_TOTAL + rows - rows // share
                with spawn.Pool(1) as pool:
                    measure = pool.apply(_render, (database_url, formato, minimo))
                print(
                    f"{measure.formato:8} {measure.rows:>9,} {measure.seconds:>9.2f} "
                    f"{measure.cpu_seconds:>9.2f} {measure.rows / measure.cpu_seconds:>9,.0f} "
                    f"{measure.peak_rss_mb:>7.1f}MB "
                    f"{measure.baseline_rss_mb:>7.1f}MB {measure.size_mb:>7.1f}MB"
                )


if __name__ == "__main__":
    main()

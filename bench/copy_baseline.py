"""PostgreSQL alone: the worker's own report query, `COPY (…) TO STDOUT` by psql to /dev/null.

The statement comes from services/export_worker/queries.py with the parameters of the job just
measured, so the baseline aggregates exactly what the worker aggregated.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.dialects.postgresql.base import PGDialect

from services.export_worker import queries
from shared.job_params import ReportParams
from shared.settings import get_settings


def report_sql(job_params: Mapping[str, Any]) -> str:
    params = ReportParams.from_json(job_params, ZoneInfo(get_settings().timezone))
    rule = queries.LoyaltyRule(params.desde, params.hasta, params.monto_minimo)
    statement = queries.reporte_fidelizacion_statement(rule)
    dialect = PGDialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's dialects are untyped
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def seconds(database_url: str, job_params: Mapping[str, Any], log: Path) -> float:
    """Wall time of psql (its start-up included) copying the report's rows to /dev/null."""
    command = f"COPY ({report_sql(job_params)}) TO STDOUT"
    argv = ["psql", "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-d", database_url]
    # The workers' session settings (shared.db): UTC, so timestamps compare the same way.
    env = {**os.environ, "PGOPTIONS": "-c timezone=UTC"}
    started = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        done = subprocess.run(
            [*argv, "-c", command],
            stdout=devnull,
            stderr=subprocess.PIPE,
            env=env,
            timeout=3600,
            check=False,
        )
    elapsed = time.perf_counter() - started
    with log.open("a") as output:
        output.write(f"$ psql -c 'COPY (…report…) TO STDOUT' > /dev/null  # {elapsed:.3f} s\n")
    if done.returncode != 0:
        raise RuntimeError(f"psql COPY failed: {done.stderr.decode(errors='replace')[-500:]}")
    return elapsed

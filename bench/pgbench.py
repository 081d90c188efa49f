"""The database ceiling: pgbench running the API's own lookup SQL on the same data.

The statement is imported from the lookup repository, so the ceiling can never drift from what
the API runs. Its bound parameters become pgbench variables; the document comes from
bench.documentos (the same random existing documents wrk asks for) by a subselect, so every
transaction stays one round trip, like the API's lookup.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.query_api.clientes import repository

CLIENTS = 8
THREADS = 2
COMPRAS_LIMIT = 20  # the `compras_limit` default of SPEC §3, which wrk's requests leave as is

DOCUMENT_COLUMN = "(SELECT {column} FROM bench.documentos WHERE n = :i)"
# What each bound parameter of the lookup becomes in the pgbench script.
PARAMETERS = {
    "codigo": DOCUMENT_COLUMN.format(column="codigo"),
    "tipo_documento_id": DOCUMENT_COLUMN.format(column="tipo_documento_id"),
    "numero_documento": DOCUMENT_COLUMN.format(column="numero_documento"),
    "compras_limit": ":compras_limit",
}
_BIND = re.compile(r"%\((\w+)\)s")  # psycopg's named placeholders
_TPS = re.compile(r"^tps = ([\d.]+)", re.MULTILINE)
_LATENCY = re.compile(r"^latency average = ([\d.]+) ms", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Ceiling:
    transactions_per_second: float
    latency_average_ms: float
    failed: int


def lookup_statement() -> str:
    """What `GET /api/clientes/buscar/?tipo_documento=CC&numero_documento=…` runs."""
    return repository.DETALLE_POR_CODIGO


def script(statement: str, documents: int) -> str:
    names = set(_BIND.findall(statement))
    unknown = names - PARAMETERS.keys()
    if unknown:
        raise RuntimeError(f"the lookup SQL has parameters the bench cannot bind: {unknown}")
    sql = _BIND.sub(lambda match: PARAMETERS.get(match[1], match[0]), statement)
    return f"\\set i random(1, {documents})\n\\set compras_limit {COMPRAS_LIMIT}\n{sql.strip()};\n"


def run(database_url: str, script_path: Path, seconds: int, log: Path) -> Ceiling:
    """`pgbench -M prepared -c 8 -j 2 -T <seconds>` with the lookup script."""
    argv = [
        "pgbench",
        "--no-vacuum",
        *("-M", "prepared"),
        *("-c", str(CLIENTS)),
        *("-j", str(THREADS)),
        *("-T", str(seconds)),
        *("-f", str(script_path)),
        database_url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    with log.open("a") as output:
        output.write(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise RuntimeError(f"pgbench exited with {done.returncode}: {done.stderr.strip()[-500:]}")
    return parse(done.stdout)


def parse(output: str) -> Ceiling:
    tps, latency = _TPS.search(output), _LATENCY.search(output)
    if tps is None or latency is None:
        raise RuntimeError(f"pgbench printed no tps/latency:\n{output[-1000:]}")
    failed = _FAILED.search(output)
    return Ceiling(
        transactions_per_second=float(tps[1]),
        latency_average_ms=float(latency[1]),
        failed=int(failed[1]) if failed else 0,
    )

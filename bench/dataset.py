"""The bench database: created, migrated, seeded by the real `seed_data` CLI only when needed.

What the dataset was built with lives in the database itself (schema `bench`), beside the
samples every run draws from: random existing documents for the load generators, a customer with
ten purchases for the export jobs, and the seed time of the last build with its baseline (Faker
one customer at a time, measured right after it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg

from bench import writers
from bench.sizes import Size
from shared import prestart
from shared.settings import Settings, to_libpq_url

ADMIN_URL = os.environ.get(
    "BENCH_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DOCUMENT_SAMPLE = 20_000
LOTE_SIZE = 100
LOTE_BODIES = 500
EXPORT_PURCHASES = 10

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.dataset (
    marker text PRIMARY KEY,
    seed_seconds double precision NOT NULL,
    faker_seconds double precision NOT NULL,
    export_cliente_id bigint NOT NULL,
    built_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS bench.documentos (
    n integer PRIMARY KEY,
    tipo_documento_id integer NOT NULL,
    codigo text NOT NULL,
    numero_documento text NOT NULL
);
"""

# Active customers only: `buscar` answers 404 for the others, which would count as errors.
SAMPLE_DOCUMENTS = """
INSERT INTO bench.documentos (n, tipo_documento_id, codigo, numero_documento)
SELECT row_number() OVER (), sample.tipo_documento_id, sample.codigo, sample.numero_documento
FROM (
    SELECT c.tipo_documento_id, t.codigo, c.numero_documento
    FROM clientes c JOIN tipos_documento t ON t.id = c.tipo_documento_id
    WHERE c.activo
    ORDER BY random()
    LIMIT %(limit)s
) AS sample
"""

# The customer whose export is timed: exactly ten purchases, or the nearest count above.
EXPORT_CLIENTE = """
SELECT c.id
FROM clientes c JOIN compras p ON p.cliente_id = c.id
WHERE c.activo
GROUP BY c.id
HAVING count(*) >= %(purchases)s
ORDER BY count(*), c.id
LIMIT 1
"""

COLUMNS = "seed_seconds, faker_seconds, export_cliente_id, built_at::text"
BUILT = f"SELECT {COLUMNS} FROM bench.dataset WHERE marker = %s"
RECORD_BUILD = f"""
INSERT INTO bench.dataset (marker, seed_seconds, faker_seconds, export_cliente_id)
VALUES (%s, %s, %s, %s)
RETURNING {COLUMNS}
"""


@dataclass(frozen=True, slots=True)
class Dataset:
    size: Size
    url: str
    seed_seconds: float
    faker_seconds: float  # Faker one customer at a time, projected to this size, same build
    built_at: str
    rebuilt: bool
    export_cliente_id: int
    documents: int


def database_url(size: Size) -> str:
    base, _, _ = to_libpq_url(ADMIN_URL).rpartition("/")
    # BENCH_DATABASE: a dataset of its own, e.g. for a branch whose migration the shared
    # dataset (migrated by every run) must not receive before that branch is merged.
    return f"{base}/{os.environ.get('BENCH_DATABASE') or size.database}"


def prepare(size: Size, log: Path) -> Dataset:
    """Create and migrate the database if needed; seed it again only if the marker differs."""
    url = database_url(size)
    settings = Settings(database_url=url)
    prestart.ensure_database(settings)
    prestart.migrate(settings)
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(SCHEMA)
        built = connection.execute(BUILT, [size.marker]).fetchone()
    rebuilt = built is None
    if built is None:
        seed_seconds = seed(size, url, log)
        faker_seconds = size.clientes / writers.faker_customers_per_second()
        export_cliente_id = _sample(url, size)
        with psycopg.connect(url, autocommit=True) as connection:
            built = connection.execute(
                RECORD_BUILD, [size.marker, seed_seconds, faker_seconds, export_cliente_id]
            ).fetchone()
    assert built is not None
    seed_seconds, faker_seconds, export_cliente_id, built_at = built
    with psycopg.connect(url) as connection:
        count = connection.execute("SELECT count(*) FROM bench.documentos").fetchone()
    return Dataset(
        size=size,
        url=url,
        seed_seconds=float(seed_seconds),
        faker_seconds=float(faker_seconds),
        built_at=str(built_at),
        rebuilt=rebuilt,
        export_cliente_id=int(export_cliente_id),
        documents=int(count[0]) if count else 0,
    )


def seed(size: Size, url: str, log: Path) -> float:
    """Run the real CLI, as a user would, and time it. Any previous marker goes first, so an
    interrupted seed is never mistaken for a finished one."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("TRUNCATE bench.dataset, bench.documentos")
    argv = [
        str(Path(sys.executable).parent / "seed_data"),
        *("--clientes", str(size.clientes), "--compras-por-cliente", str(size.compras_por_cliente)),
        *("--seed", str(size.seed), "--reset"),
    ]
    print(f"seeding {size.clientes:,} customers: {' '.join(argv[1:])}", file=sys.stderr)
    started = time.perf_counter()
    with log.open("ab") as output:
        done = subprocess.run(
            argv,
            env={**os.environ, "DATABASE_URL": url},
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=3600,
            check=False,
        )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"seed_data exited with {done.returncode}; see {log}")
    with psycopg.connect(url, autocommit=True) as connection:
        # Settle the visibility map and statistics now, not whenever autovacuum gets to it,
        # so that every run measures the same plans (not counted in the seed time).
        connection.execute("VACUUM (ANALYZE)")
    return seconds


def _sample(url: str, size: Size) -> int:
    with psycopg.connect(url) as connection:
        connection.execute("SELECT setseed(%s)", [1 / (size.seed + 1)])
        connection.execute(SAMPLE_DOCUMENTS, {"limit": DOCUMENT_SAMPLE})
        row = connection.execute(EXPORT_CLIENTE, {"purchases": EXPORT_PURCHASES}).fetchone()
    if row is None:
        raise RuntimeError(f"no active customer with {EXPORT_PURCHASES} purchases or more")
    return int(row[0])


def purchases_of(url: str, cliente_id: int) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM compras WHERE cliente_id = %s", [cliente_id]
        ).fetchone()
    return int(row[0]) if row else 0


def documents(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT codigo, numero_documento FROM bench.documentos ORDER BY n"
        ).fetchall()
    return [(str(codigo), str(numero)) for codigo, numero in rows]


# Request lists for bench/lua/random_requests.lua: Lua files returning a table.


def _lua_string(value: str) -> str:
    """A Lua string literal of `value`'s UTF-8 bytes: printable ASCII as is, the rest as
    decimal escapes (Lua 5.1, which wrk embeds, has no \\u escape)."""
    escaped = (
        chr(byte) if 32 <= byte < 127 and chr(byte) not in '"\\' else f"\\{byte:03d}"
        for byte in value.encode()
    )
    return '"' + "".join(escaped) + '"'


def write_requests(path: Path, method: str, items: Sequence[tuple[str, str | None]]) -> Path:
    lines = [f"return {{method = {_lua_string(method)}, items = {{"]
    for request_path, body in items:
        body_field = f", body = {_lua_string(body)}" if body is not None else ""
        lines.append(f"  {{path = {_lua_string(request_path)}{body_field}}},")
    lines.append("}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def buscar_path(codigo: str, numero: str) -> str:
    return (
        f"/api/clientes/buscar/?tipo_documento={quote(codigo, safe='')}"
        f"&numero_documento={quote(numero, safe='')}"
    )


def buscar_requests(path: Path, sample: list[tuple[str, str]]) -> Path:
    return write_requests(path, "GET", [(buscar_path(c, n), None) for c, n in sample])


def lote_requests(path: Path, sample: list[tuple[str, str]]) -> Path:
    bodies = []
    for start in range(0, LOTE_BODIES * LOTE_SIZE, LOTE_SIZE):
        chunk = [sample[(start + i) % len(sample)] for i in range(LOTE_SIZE)]
        documentos = [{"tipo_documento": c, "numero_documento": n} for c, n in chunk]
        bodies.append(("/api/clientes/buscar/lote/", json.dumps({"documentos": documentos})))
    return write_requests(path, "POST", bodies)

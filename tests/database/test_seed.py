"""seed_data, run for real as a subprocess against throwaway databases of its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine

from harness import servers
from harness.databases import database_url_for, throwaway_database
from shared import documents
from shared.settings import to_libpq_url, to_psycopg_url
from tests import factories
from tests.totales import TOTALES_DIFFERING

SEED_DATA = str(Path(sys.executable).parent / "seed_data")
PYTHON_M_SEED = [sys.executable, "-m", "shared.seed"]

# The loyalty report's rule (SPEC §5) with its defaults: active, completed purchases of the
# last 30 days summing to more than 5,000,000 COP.
LOYALTY_MATCHES = """
    SELECT t.codigo, c.numero_documento
    FROM clientes c
    JOIN tipos_documento t ON t.id = c.tipo_documento_id
    JOIN compras p ON p.cliente_id = c.id
    WHERE c.activo AND p.estado = 'completada'
      AND p.fecha_compra >= now() - interval '30 days' AND p.fecha_compra < now()
    GROUP BY t.codigo, c.numero_documento
    HAVING sum(p.monto) > 5000000
"""
DUMP_MD5 = {
    "clientes": "SELECT md5(string_agg(c::text, E'\\n' ORDER BY c.id)) FROM clientes c",
    "compras": "SELECT md5(string_agg(p::text, E'\\n' ORDER BY p.id)) FROM compras p",
}
SCHEMA = """
    SELECT 'index', indexname, indexdef FROM pg_indexes WHERE tablename IN ('clientes', 'compras')
    UNION ALL
    SELECT 'constraint', conname, pg_get_constraintdef(oid) || (CASE WHEN convalidated THEN ''
           ELSE ' NOT VALID' END)
    FROM pg_constraint WHERE conrelid IN ('clientes'::regclass, 'compras'::regclass)
    ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def lookup(self, label: str) -> tuple[str, str]:
        """The (type, number) the summary offers to try, for `a customer` or `one the loyalty…`."""
        match = re.search(rf"^  {label}[^:]*: (\w+) (\S+)$", self.stdout, re.MULTILINE)
        assert match, self.stdout
        return match[1], match[2]

    @property
    def purchase_dates(self) -> str:
        match = re.search(r"dated (\S+ to \S+)", self.stdout)
        assert match, self.stdout
        return match[1]


def seed_data(url: str, *args: str, argv: list[str] | None = None) -> Run:
    result = subprocess.run(
        [*(argv or [SEED_DATA]), *args],
        env={**os.environ, "DATABASE_URL": url},
        cwd=servers.ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def seeded(url: str, *args: str) -> Run:
    run = seed_data(url, *args)
    assert run.returncode == 0, run.stderr
    return run


def query(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(to_libpq_url(url)) as connection:
        return connection.execute(sql, params).fetchall()


def scalar(url: str, sql: str, params: tuple[object, ...] = ()) -> Any:
    return query(url, sql, params)[0][0]


def dump_md5(url: str) -> tuple[str, str]:
    return scalar(url, DUMP_MD5["clientes"]), scalar(url, DUMP_MD5["compras"])


@pytest.fixture
def new_database() -> Iterator[str]:
    with throwaway_database("clientes_seed") as url:
        yield url


@dataclass(frozen=True)
class Seeded:
    url: str
    run: Run
    schema_before: list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def bulk_seeded() -> Iterator[Seeded]:
    """300 customers with seed 7, through the bulk path (indexes dropped and rebuilt). Read-only."""
    with throwaway_database("clientes_seed") as url:
        schema_before = query(url, SCHEMA)
        run = seeded(url, "--clientes", "300", "--seed", "7", "--bulk-threshold", "1")
        yield Seeded(url, run, schema_before)


def test_seeds_customers_and_their_purchases(bulk_seeded: Seeded) -> None:
    url = bulk_seeded.url
    assert scalar(url, "SELECT count(*) FROM clientes") == 300
    compras = scalar(url, "SELECT count(*) FROM compras")
    assert 2_400 <= compras <= 3_600
    assert f"Added 300 customers and {compras:,} purchases" in bulk_seeded.run.stdout
    assert "(seed 7)" in bulk_seeded.run.stdout
    assert "customers  [" in bulk_seeded.run.stderr and "100%" in bulk_seeded.run.stderr


def test_purchases_are_recent_mostly_completed_and_realistic(bulk_seeded: Seeded) -> None:
    url = bulk_seeded.url
    outside = """
        SELECT count(*) FROM compras
        WHERE NOT fecha_compra BETWEEN now() - interval '90 days' AND now()
    """
    assert scalar(url, outside) == 0
    shares = dict(
        query(url, "SELECT estado, count(*) / sum(count(*)) OVER () FROM compras GROUP BY estado")
    )
    assert set(shares) == {"completada", "pendiente", "cancelada"}
    assert 0.7 <= shares["completada"] <= 0.9
    assert scalar(url, "SELECT avg((monto BETWEEN 20000 AND 2000000)::int) FROM compras") >= 0.85
    assert scalar(url, "SELECT min(monto) FROM compras") > 0
    assert scalar(url, "SELECT count(*) FROM compras WHERE monto <> trunc(monto)") > 0  # cents
    facturas = [
        numero for (numero,) in query(url, "SELECT numero_factura FROM compras ORDER BY id")
    ]
    assert all(re.fullmatch(r"FV-\d{8}", numero) for numero in facturas)
    assert facturas[0] == "FV-00000001"
    assert scalar(url, "SELECT count(DISTINCT descripcion) FROM compras") > 20
    registered_after_buying = """
        SELECT count(*) FROM compras p JOIN clientes c ON c.id = p.cliente_id
        WHERE p.fecha_compra < c.fecha_registro
    """
    assert scalar(url, registered_after_buying) == 0


def test_customers_look_colombian(bulk_seeded: Seeded) -> None:
    url = bulk_seeded.url
    rows = query(
        url,
        "SELECT t.codigo, c.numero_documento, c.nombre, c.apellido, c.correo, c.telefono, c.activo"
        " FROM clientes c JOIN tipos_documento t ON t.id = c.tipo_documento_id",
    )
    by_type = Counter(codigo for codigo, *_ in rows)
    for codigo, numero, nombre, apellido, correo, telefono, _ in rows:
        assert documents.is_well_formed(codigo, numero), (codigo, numero)
        assert nombre and apellido
        assert re.fullmatch(r"[a-z0-9.]+@[a-z0-9.]+\.[a-z.]+", correo), correo
        assert re.fullmatch(r"\+57 3\d\d \d{3} \d\d \d\d", telefono), telefono
    assert set(by_type) == {"CC", "NIT", "CE", "PA", "TI"}
    assert by_type["CC"] > 0.6 * len(rows)
    nits = [numero for codigo, numero, *_ in rows if codigo == "NIT"]
    assert nits and all(documents.is_valid_nit(numero) for numero in nits)
    inactive = sum(1 for *_, activo in rows if not activo)
    assert 1 <= inactive <= 0.15 * len(rows)
    accents = "SELECT count(*) FROM clientes WHERE nombre || apellido ~ '[áéíóúñÁÉÍÓÚÑ]'"
    assert scalar(url, accents) > 0


def test_someone_qualifies_for_the_loyalty_report(bulk_seeded: Seeded) -> None:
    matches = query(bulk_seeded.url, LOYALTY_MATCHES)
    assert matches
    assert bulk_seeded.run.lookup("one the loyalty report lists") in matches


def test_the_suggested_lookups_exist(bulk_seeded: Seeded) -> None:
    codigo, numero = bulk_seeded.run.lookup("a customer")
    found = """
        SELECT c.activo FROM clientes c JOIN tipos_documento t ON t.id = c.tipo_documento_id
        WHERE t.codigo = %s AND c.numero_documento = %s
    """
    assert query(bulk_seeded.url, found, (codigo, numero)) == [(True,)]
    assert f"GET /api/clientes/buscar/?tipo_documento={codigo}&numero_documento={numero}" in (
        bulk_seeded.run.stdout
    )


def test_bulk_load_rebuilds_every_index_and_constraint(bulk_seeded: Seeded) -> None:
    assert "indexes and constraints" in bulk_seeded.run.stdout  # it did take the bulk path
    assert query(bulk_seeded.url, SCHEMA) == bulk_seeded.schema_before
    # New rows continue after the seeded ids.
    sequence = "SELECT last_value FROM clientes_id_seq"
    assert scalar(bulk_seeded.url, sequence) == 300
    # The purchases' totals, counted once after the load, and their triggers on again.
    assert scalar(bulk_seeded.url, "SELECT count(*) FROM clientes_totales") > 0
    assert query(bulk_seeded.url, TOTALES_DIFFERING) == []
    enabled = (
        "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'clientes_totales%%' AND tgenabled = 'O'"
    )
    assert scalar(bulk_seeded.url, enabled) == 4


def test_bad_arguments_fail_clearly_and_change_nothing(bulk_seeded: Seeded) -> None:
    before = dump_md5(bulk_seeded.url)
    for args, message in [
        (["--clientes", "-5"], "argument --clientes: must be a whole number ≥ 1, got '-5'"),
        (["--clientes", "abc"], "argument --clientes: must be a whole number ≥ 1, got 'abc'"),
    ]:
        run = seed_data(bulk_seeded.url, *args, argv=PYTHON_M_SEED)
        assert run.returncode == 2
        assert message in run.stderr
        assert run.stdout == ""
    assert dump_md5(bulk_seeded.url) == before


def test_same_seed_same_rows_re_runs_add_and_reset_starts_over(
    new_database: str, bulk_seeded: Seeded
) -> None:
    url = new_database
    first = seeded(url, "--clientes", "300", "--seed", "7")
    assert "indexes and constraints" not in first.stdout  # the ordinary path, indexes kept
    again = seeded(url, "--clientes", "300", "--seed", "7", "--reset")
    if not first.purchase_dates == again.purchase_dates == bulk_seeded.run.purchase_dates:
        pytest.skip("the day changed between runs: dates count back from the start of today")
    # Same rows whether loaded through the bulk path (another database) or not, and after --reset.
    assert dump_md5(url) == dump_md5(bulk_seeded.url)
    original = query(url, "SELECT * FROM clientes ORDER BY id")

    # Re-running without --reset, even with the same seed, adds customers (the unique
    # constraints hold throughout: new numbers, new invoices) and their own loyal customer.
    more = [seeded(url, "--clientes", "40", "--seed", "7"), seeded(url, "--clientes", "40")]
    assert scalar(url, "SELECT count(*) FROM clientes") == 380
    assert query(url, TOTALES_DIFFERING) == []  # kept by the triggers on the ordinary path
    assert query(url, "SELECT * FROM clientes WHERE id <= 300 ORDER BY id") == original
    newest = query(url, "SELECT numero_factura FROM compras WHERE cliente_id > 340 ORDER BY id")
    oldest = query(url, "SELECT numero_factura FROM compras WHERE cliente_id <= 300 ORDER BY id")
    assert newest[0] > oldest[-1]  # invoices continue the numbering
    matches = query(url, LOYALTY_MATCHES)
    assert all(run.lookup("one the loyalty report lists") in matches for run in more)

    reset = seeded(url, "--reset", "--clientes", "30", "--compras-por-cliente", "2")
    assert query(url, "SELECT min(id), max(id), count(*) FROM clientes") == [(1, 30, 30)]
    assert scalar(url, "SELECT min(numero_factura) FROM compras") == "FV-00000001"
    compras = scalar(url, "SELECT count(*) FROM compras")
    assert 30 <= compras <= 120
    assert f"Added 30 customers and {compras:,} purchases" in reset.stdout
    assert f"now holds 30 customers and {compras:,} purchases" in reset.stdout
    assert query(url, TOTALES_DIFFERING) == []


def test_numbers_and_invoices_taken_by_other_rows_are_skipped(new_database: str) -> None:
    url = new_database
    engine = create_engine(to_psycopg_url(url))
    try:
        someone = factories.make_cliente(engine, numero_documento="1")
        factories.make_compra(engine, someone, numero_factura="FV-00000500")
        args = ("--clientes", "20", "--seed", "5")
        first = seeded(url, *args)
        generated = query(url, "SELECT * FROM clientes WHERE id > %s ORDER BY id", (someone.id,))
        assert [row[0] for row in generated] == list(range(someone.id + 1, someone.id + 21))
        new_invoices = "SELECT min(numero_factura) FROM compras WHERE cliente_id > %s"
        assert scalar(url, new_invoices, (someone.id,)) == "FV-00000501"

        # Start over after `someone`, who now holds the number the sixth new customer will get.
        query(url, "DELETE FROM clientes WHERE id > %s RETURNING id", (someone.id,))
        victim = generated[5]
        query(
            url,
            "UPDATE clientes SET tipo_documento_id = %s, numero_documento = %s WHERE id = %s"
            " RETURNING id",
            (victim[1], victim[2], someone.id),
        )
        again = seeded(url, *args)
        if first.purchase_dates != again.purchase_dates:
            pytest.skip("the day changed between runs: dates count back from the start of today")
        regenerated = query(url, "SELECT * FROM clientes WHERE id > %s ORDER BY id", (someone.id,))
        assert regenerated[:5] + regenerated[6:] == generated[:5] + generated[6:]
        moved = regenerated[5]
        assert moved[1] == victim[1] and moved[2] != victim[2]
        codigo = scalar(url, "SELECT codigo FROM tipos_documento WHERE id = %s", (moved[1],))
        assert documents.is_well_formed(codigo, moved[2])

        # Rows added by other means continue after the seeded ids.
        assert factories.make_cliente(engine).id == someone.id + 21
    finally:
        engine.dispose()


def test_unreachable_or_unmigrated_database_is_reported() -> None:
    run = seed_data(database_url_for(f"clientes_missing_{uuid.uuid4().hex[:8]}"), "--clientes", "5")
    assert run.returncode == 1
    assert "seed_data: cannot use PostgreSQL" in run.stderr and "does not exist" in run.stderr

    with throwaway_database("clientes_seed", migrated=False) as url:
        run = seed_data(url, "--clientes", "5")
    assert run.returncode == 1
    assert 'relation "clientes" does not exist: run `alembic upgrade head` first' in run.stderr

"""The bulk export's CSV rules in SQL (services/export_worker/bulk.py) against the renderers'
Python: PostgreSQL writes those files, and they must read like every other csv of Clientes."""

from __future__ import annotations

import io
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, text

from services.export_worker import bulk, exports
from services.export_worker.renderers import Column, Kind, escape_formula, plain_text
from shared import jobs
from shared.job_params import BulkExportParams, BulkFilter
from shared.models import JobInput
from shared.settings import get_settings
from tests.database.job_rows import new_owner
from tests.factories import make_cliente, make_compra, unique_digits
from tests.unit.test_escaping import NUMBER_OR_PHONE

# PostgreSQL's text holds no NUL (nor a lone surrogate, which is no UTF-8); everything else may
# come from a customer's record.
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))


def _sql_value(engine: Engine, expression: str, value: object) -> object:
    with engine.connect() as connection:
        driver: psycopg.Connection = connection.connection.driver_connection  # type: ignore[assignment]
        driver.execute("SET datestyle = 'ISO, YMD'")  # as render_exportacion_masiva sets it
        params = {"timezone": get_settings().timezone, "v": value}
        row = driver.execute(f"SELECT {expression} FROM (SELECT %(v)s AS v) AS c", params)
        return row.fetchone()[0]  # type: ignore[index]


@settings(max_examples=150, deadline=None)
@given(TEXT | NUMBER_OR_PHONE)
@example("=HYPERLINK(1)")
@example("''=x")
@example("'-1")
@example("-1-1")
@example("+57 300 123 4567")
@example("\t=1")
@example("\n=1")
@example("")
def test_sql_escaping_is_escape_formula(engine: Engine, text: str) -> None:
    assert _sql_value(engine, bulk.escaped_text_sql("c.v::text"), text) == escape_formula(text)


def test_dates_are_written_as_plain_text_writes_them(engine: Engine) -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    sql, quoted = bulk.csv_field_sql(bulk.Field(Column("F", Kind.DATETIME), "c.v::timestamptz"))
    timezone = ZoneInfo(get_settings().timezone)
    assert quoted and _sql_value(engine, sql, moment) == plain_text(moment, timezone)
    assert _sql_value(engine, sql, None) == ""


@pytest.mark.parametrize("activo", [True, False])
def test_constant_fields_are_what_the_escape_leaves(engine: Engine, activo: bool) -> None:
    # The CSV writes a constant field's values without the escape: it must leave them as they are.
    constant = [field for field in bulk.CLIENTE_FIELDS if field.constant]
    assert constant
    for field in constant:
        value = _sql_value(engine, field.sql.replace("c.activo", "c.v::boolean"), activo)
        assert isinstance(value, str) and escape_formula(value) == value


@pytest.fixture(scope="module")
def documents_job(engine: Engine) -> tuple[uuid.UUID, dict[str, Any]]:
    """A bulk export's documents: two customers (one inactive, one with two purchases) named
    twice each, one number nobody has, one number under the wrong type."""
    ana = make_cliente(engine)
    nit = make_cliente(engine, codigo="NIT", activo=False)
    make_compra(engine, ana)
    make_compra(engine, ana, estado="pendiente")
    pairs = [
        ("CC", ana.numero_documento),
        ("NIT", nit.numero_documento),
        ("CC", ana.numero_documento),
        ("NIT", nit.numero_documento),
        ("CC", "1" + unique_digits(9)),
        ("NIT", ana.numero_documento),
    ]
    with engine.begin() as connection:
        job_id: uuid.UUID = connection.execute(
            jobs.create(
                job_type=jobs.JobType.EXPORTACION_MASIVA,
                params={},
                api_key_id=new_owner(engine, "bulk-sql"),
                idempotency_key=None,
                request_id=None,
                created_at=datetime.now(UTC),
            )
        ).scalar_one()
        connection.execute(
            insert(JobInput).values(
                job_id=job_id,
                codigos=[codigo for codigo, _ in pairs],
                numeros=[numero for _, numero in pairs],
            )
        )
    return job_id, {"nombre": ana.nombre, "not_found": 2}


@pytest.mark.parametrize("incluir_compras", [False, True])
@pytest.mark.parametrize("long_list", [False, True])
@pytest.mark.parametrize("others", [{}, {"activo": True}, {"activo": False}, {"q": "nombre"}])
def test_one_pass_over_the_documents_counts_as_the_file_has_rows(
    engine: Engine,
    documents_job: tuple[uuid.UUID, dict[str, Any]],
    others: dict[str, Any],
    long_list: bool,
    incluir_compras: bool,
) -> None:
    """documents_count_statement (one pass: not found, and rows) against the file's own
    selection counted by count_statement, with and without the hash joins of a long list."""
    job_id, expected = documents_job
    if others.get("q") == "nombre":
        others = {"q": expected["nombre"]}
    selection = bulk.Selection(job_id, BulkFilter(documentos=6, **others))
    with engine.connect() as connection:
        if long_list:
            connection.exec_driver_sql("SET LOCAL enable_nestloop = off")
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        where, params = selection.where()
        counted = cursor.execute(bulk.count_statement(where, incluir_compras), params).fetchone()
        others_sql, others_params = selection.where(documentos=False)
        one_pass = bulk.documents_count_statement(others_sql, incluir_compras)
        not_found, *counts = cursor.execute(one_pass, others_params).fetchone()
        # The rows, and the middle customer where the file splits in halves.
        assert (not_found, counts) == (expected["not_found"], list(counted))


@pytest.fixture(scope="module")
def surname(engine: Engine) -> str:
    """Seven customers sharing a surname nobody else has, with 0 to 3 purchases each."""
    word = f"Mitad{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    for index in range(7):
        cliente = make_cliente(engine, apellido=word, nombre=f"=Cliente {index}")
        for day in range(index % 4):
            make_compra(
                engine, cliente, monto=f"{index}{day}.50", fecha_compra=now - timedelta(days=day)
            )
    return word


SNAPSHOT: dict[str, Any] = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}


class Render:
    """render_exportacion_masiva in this process, on a read-only snapshot like the worker's."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.rows_seen: list[int] = []

    def __call__(
        self, job_id: uuid.UUID, params: BulkExportParams, split_min_rows: int
    ) -> tuple[bytes, exports.RenderedFile]:
        out = io.BytesIO()
        self.rows_seen = []
        with self.engine.connect() as connection:
            connection.execution_options(**SNAPSHOT)
            with connection.begin():
                rendered = bulk.render_exportacion_masiva(
                    connection,
                    job_id=job_id,
                    params=params,
                    out=out,
                    generated_at=datetime.now(UTC),
                    timezone=ZoneInfo(get_settings().timezone),
                    on_progress=lambda percent: None,
                    on_rows=self.rows_seen.append,
                    split_min_rows=split_min_rows,
                )
        return out.getvalue(), rendered


@pytest.mark.parametrize("formato", ["csv", "jsonl"])
@pytest.mark.parametrize("incluir_compras", [False, True])
@pytest.mark.parametrize("by", ["q", "documentos"])
def test_two_halves_at_once_make_the_very_file_of_one(
    engine: Engine,
    surname: str,
    documents_job: tuple[uuid.UUID, dict[str, Any]],
    formato: str,
    incluir_compras: bool,
    by: str,
) -> None:
    job_id, filtro = uuid.uuid4(), BulkFilter(q=surname)
    if by == "documentos":
        job_id, filtro = documents_job[0], BulkFilter(documentos=6)
    params = BulkExportParams(formato, incluir_compras, filtro, None)
    render = Render(engine)
    whole, one = render(job_id, params, split_min_rows=10**9)
    halves, two = render(job_id, params, split_min_rows=1)
    assert halves == whole and two == one
    assert whole.count(b"\n") >= 2
    seen = render.rows_seen
    assert seen == sorted(seen) and seen[-1] == one.row_count


@pytest.fixture(scope="module")
def long_second_half(engine: Engine) -> str:
    """Three customers sharing a surname: two with one purchase, the last (in the file's
    second half, from the middle one on) with 50,000, so that its half still runs when the
    first half is done."""
    word = f"Larga{uuid.uuid4().hex[:10]}"
    for _ in range(2):
        make_compra(engine, make_cliente(engine, apellido=word))
    cliente = make_cliente(engine, apellido=word)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO compras (cliente_id, numero_factura, fecha_compra, monto, estado)"
                " SELECT :id, 'L' || :id || '-' || n, now(), 1000, 'pendiente'"
                " FROM generate_series(1, 50000) AS n"
            ),
            {"id": cliente.id},
        )
    return word


def test_a_failure_part_way_stops_the_second_half(engine: Engine, long_second_half: str) -> None:
    class Canceled(Exception):
        pass

    def cancel(rows: int) -> None:
        raise Canceled

    params = BulkExportParams("csv", True, BulkFilter(q=long_second_half), None)
    checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    with engine.connect() as connection:
        connection.execution_options(**SNAPSHOT)
        with connection.begin(), pytest.raises(Canceled):
            bulk.render_exportacion_masiva(
                connection,
                job_id=uuid.uuid4(),
                params=params,
                out=io.BytesIO(),
                generated_at=datetime.now(UTC),
                timezone=ZoneInfo(get_settings().timezone),
                on_progress=lambda percent: None,
                on_rows=lambda rows: cancel(rows) if rows else None,
                split_min_rows=1,
            )
    assert [t for t in threading.enumerate() if t.name == "bulk-second-half"] == []
    back = engine.pool.checkedout()  # type: ignore[attr-defined]
    assert back == checked_out, "the second half's connection went back"

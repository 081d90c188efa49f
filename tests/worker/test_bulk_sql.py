"""The bulk export's CSV rules in SQL (services/export_worker/bulk.py) against the renderers'
Python: PostgreSQL writes those files, and they must read like every other csv of Clientes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert

from services.export_worker import bulk
from services.export_worker.renderers import Column, Kind, escape_formula, plain_text
from shared import jobs
from shared.job_params import BulkFilter
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
        not_found, total = cursor.execute(one_pass, others_params).fetchone()
        assert (not_found, total) == (expected["not_found"], counted[0])

"""The bulk export's CSV rules in SQL (services/export_worker/bulk.py) against the renderers'
Python: PostgreSQL writes those files, and they must read like every other csv of Clientes."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import psycopg
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from services.export_worker import bulk
from services.export_worker.renderers import Column, Kind, escape_formula, plain_text
from shared.settings import get_settings
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

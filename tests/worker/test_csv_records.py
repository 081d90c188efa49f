"""CSV records written by PostgreSQL (the csv report's path) against the csv module's.

`escape_formula_sql` and `csv.sql_record` restate in SQL what `escape_formula` and `csv.render`
do in Python; here PostgreSQL runs them on values chosen to hit every rule (formula triggers,
quotes before them, numbers and phones, quotes, delimiters, line breaks), and the answers must
be the Python ones, character for character.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, Integer, Numeric, String, column, select, values

from services.export_worker import exports
from services.export_worker.renderers import Document, escape_formula, escape_formula_sql
from services.export_worker.renderers import csv as csv_renderer
from tests.factories import BUSINESS_TZ

# PostgreSQL text cannot hold NUL; the rest of Unicode (but surrogates) is fair game, weighted
# towards the characters the rules are about.
RULE_CHARACTERS = list("=+-@\t\r\n'\"0123456789 ().;,aZñ€")
TEXT = st.text(
    alphabet=st.sampled_from(RULE_CHARACTERS)
    | st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)
EXAMPLES = [
    '=HYPERLINK("http://x","y")',
    "@SUM(A1)",
    "+cmd",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
    "=cmd|' /C calc'!A0",
    "+57 300 123 4567",
    "+57 (300) 123-4567",
    "+573001234567",
    "+57 300",
    "+1 2345",  # 7 characters: too short for a phone, not a number
    "+1 23456",  # 8: a phone
    "+1 2345a",
    "+(1) 234 5",
    "-12.5",
    "-12.",
    "+15",
    "1500000.00",
    "Ana María",
    "",
    "'",
    "''",
    "'=",
    "'=already quoted",
    "''-1",
    "'-1",
    "'plain",
    "a=b",
    '"quoted"',
    "x\ny",
    "5\n",
    "+5\n",
    "-1-1",
]
SUPPRESS = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


def _one_column(texts: Sequence[str]) -> Any:
    return values(column("n", Integer), column("text", String), name="t").data(
        list(enumerate(texts))
    )


def escaped_by_postgresql(engine: Engine, texts: Sequence[str]) -> list[str]:
    rows = _one_column(texts)
    query = select(escape_formula_sql(rows.c.text)).order_by(rows.c.n)
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def test_escaping_examples_match_python(engine: Engine) -> None:
    assert escaped_by_postgresql(engine, EXAMPLES) == [escape_formula(text) for text in EXAMPLES]


@settings(max_examples=40, deadline=None, suppress_health_check=SUPPRESS)
@given(st.lists(TEXT, min_size=1, max_size=40))
def test_escaping_matches_python(engine: Engine, texts: list[str]) -> None:
    assert escaped_by_postgresql(engine, texts) == [escape_formula(text) for text in texts]


ReportRow = tuple[str, str, str, str, str, str, int, Decimal]
REPORT_ROWS = st.tuples(
    *[TEXT] * 6,
    st.integers(min_value=0, max_value=10**6),
    st.decimals(min_value=0, max_value=Decimal("9999999999999.99"), places=2),
)


def records_by_postgresql(engine: Engine, rows: Sequence[ReportRow]) -> bytes:
    text_columns = [column(f"c{index}", String) for index in range(6)]
    table = values(
        column("n", Integer),
        *text_columns,
        column("compras", Integer),
        column("monto", Numeric(15, 2)),
        name="t",
    ).data([(number, *row) for number, row in enumerate(rows)])
    fields = [table.c[f"c{index}"] for index in range(6)] + [table.c.compras, table.c.monto]
    query = select(exports.csv_report_record(fields)).order_by(table.c.n)
    out = io.BytesIO()
    with engine.connect() as connection:
        csv_renderer.write_records(
            exports.REPORTE_COLUMNS, connection.execute(query).scalars(), out
        )
    return out.getvalue()


def records_by_python(rows: Sequence[ReportRow]) -> bytes:
    document = Document(
        title="Reporte de fidelización",
        sheet_name="Reporte",
        columns=exports.REPORTE_COLUMNS,
        rows=rows,
        parameters=[],
        generated_at=datetime(2026, 11, 26, tzinfo=UTC),
        timezone=BUSINESS_TZ,
    )
    out = io.BytesIO()
    csv_renderer.render(document, out)
    return out.getvalue()


@settings(max_examples=25, deadline=None, suppress_health_check=SUPPRESS)
@given(st.lists(REPORT_ROWS, min_size=1, max_size=20))
@example(
    [
        (
            "CC",
            "1.234",
            'Juan "el" ;=x',
            "Pérez\r\nSegunda",
            "@a",
            "+57 300 123 4567",
            3,
            Decimal(0),
        ),
        ("NIT", "-1", "'=x", "", "a,b", "-2+3", 0, Decimal("1500000.5")),
    ]
)
def test_records_are_the_csv_modules_byte_for_byte(engine: Engine, rows: list[ReportRow]) -> None:
    assert records_by_postgresql(engine, rows) == records_by_python(rows)


def test_a_date_column_has_no_sql_record() -> None:
    # No report writes one yet: it would need the business timezone's wall clock in SQL.
    date = exports.COMPRA_COLUMNS[1]
    with pytest.raises(ValueError, match="datetime"):
        csv_renderer.sql_record([(date, column("fecha", String))])

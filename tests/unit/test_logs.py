"""shared.logs.HideRowValues: the row values of PostgreSQL's errors never reach a log line."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shared import logs

NUMBER = "52318804"
ERRORS = [
    'duplicate key value violates unique constraint "uq_clientes"\n'
    f"DETAIL:  Key (tipo_documento_id, numero_documento)=(2, {NUMBER}) already exists.",
    'new row for relation "clientes" violates check constraint "ck"\n'
    f"DETAIL:  Failing row contains (7, 2, {NUMBER}, Ana, Pérez).",
    f"Key (numero_documento)=({NUMBER}) is still referenced from table compras",
    f'invalid input\nCONTEXT:  COPY clientes, line 1: "2,{NUMBER},Ana"',
]


@pytest.mark.parametrize("error", ERRORS)
def test_neither_the_message_nor_the_traceback_holds_the_values(error: str) -> None:
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.HideRowValues())
    log = logging.getLogger("tests.unit.test_logs")
    log.addHandler(handler)
    try:
        try:
            raise RuntimeError(error)
        except RuntimeError as failure:
            log.exception(failure)  # as sqladmin does
            log.error("failed: %s", failure)
    finally:
        log.removeHandler(handler)
    entries = [json.loads(line) for line in written.getvalue().splitlines()]
    assert len(entries) == 2 and NUMBER not in written.getvalue()
    assert logs.ROW_VALUES_HIDDEN in entries[0]["message"]
    assert "RuntimeError" in entries[0]["exception"]
    # What says what went wrong stays.
    assert error.splitlines()[0].split("(")[0].strip() in entries[1]["message"]

"""In-process baselines: the bare xlsx writer and Faker, on rows shaped like the report's.

A report row is (document type, number, name, surname, e-mail, phone, purchases, total). The
baselines cycle through real rows of the bench database and write them with no formatting, so
what they time is the writer alone: the floor a worker writing the same rows cannot beat.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import xlsxwriter
from faker import Faker

from services.export_worker import exports

Person = tuple[str, str, str, str, str, str]
Row = tuple[str, str, str, str, str, str, int, float]

# The report's own columns: the baseline writes exactly the header the worker writes.
HEADER = tuple(column.title for column in exports.REPORTE_COLUMNS)
SAMPLE_ROWS = 1000
FAKER_ROWS = 5000

SAMPLE = """
SELECT t.codigo, c.numero_documento, c.nombre, c.apellido, c.correo, c.telefono
FROM clientes c JOIN tipos_documento t ON t.id = c.tipo_documento_id
ORDER BY c.id
LIMIT %(limit)s
"""


def sample_people(database_url: str) -> list[Person]:
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(SAMPLE, {"limit": SAMPLE_ROWS}).fetchall()
    return [
        (tipo, numero, nombre, apellido, correo, telefono)
        for tipo, numero, nombre, apellido, correo, telefono in rows
    ]


def _rows(sample: list[Person], count: int) -> Iterator[Row]:
    for number, person in zip(range(count), itertools.cycle(sample), strict=False):
        purchases = number % 17 + 1
        yield (*person, purchases, purchases * 412_345.67)


def xlsx_seconds(sample: list[Person], count: int) -> float:
    """XlsxWriter in constant_memory mode, typed writes, no formatting: the fastest xlsx
    writer for Python measured in the issue, so the floor for a styled report."""
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        workbook = xlsxwriter.Workbook(
            str(Path(directory) / "baseline.xlsx"), {"constant_memory": True}
        )
        sheet = workbook.add_worksheet()
        for column, title in enumerate(HEADER):
            sheet.write_string(0, column, title)
        for number, row in enumerate(_rows(sample, count), start=1):
            for column, text in enumerate(row[:6]):
                sheet.write_string(number, column, text)
            sheet.write_number(number, 6, row[6])
            sheet.write_number(number, 7, row[7])
        workbook.close()
        return time.perf_counter() - started


def faker_customers_per_second() -> float:
    """Faker es_CO making one customer's name, surname, e-mail and phone at a time."""
    fake = Faker("es_CO")
    fake.seed_instance(0)
    started = time.perf_counter()
    for _ in range(FAKER_ROWS):
        fake.first_name()
        fake.last_name()
        fake.email()
        fake.phone_number()
    return FAKER_ROWS / (time.perf_counter() - started)

"""Bulk exports (SPEC §10) through the real API and worker, beside in-process baselines: the
csv module and orjson writing the very rows and objects the job wrote (read back from its file),
and the documents to send (every customer's, in a random order).
"""

from __future__ import annotations

import csv
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench import jobs

SAMPLE_ROWS = 1000
MAX_DOCUMENTS = 100_000
PATH = "/api/exportaciones/"
DEADLINE_SECONDS = 3600

DOCUMENTS = """
SELECT t.codigo, c.numero_documento
FROM clientes c JOIN tipos_documento t ON t.id = c.tipo_documento_id
ORDER BY random()
LIMIT %(limit)s
"""


def export(client: httpx.Client, body: dict[str, Any]) -> jobs.Timed:
    """One bulk export, POST → `succeeded`."""
    return jobs.timed(client, PATH, DEADLINE_SECONDS, body)


def documents(database_url: str, count: int = MAX_DOCUMENTS) -> list[dict[str, str]]:
    with psycopg.connect(database_url) as connection:
        connection.execute("SELECT setseed(0.5)")
        rows = connection.execute(DOCUMENTS, {"limit": count}).fetchall()
    return [{"tipo_documento": codigo, "numero_documento": numero} for codigo, numero in rows]


def _first_lines(client: httpx.Client, job: jobs.Job, count: int) -> list[str]:
    """The first `count` lines of the job's file, read without downloading the rest."""
    lines: list[str] = []
    with client.stream("GET", job["result"]["download_url"]) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) > count:
                break
    return lines


def csv_sample(client: httpx.Client, job: jobs.Job) -> tuple[list[str], list[list[str]]]:
    """The job's csv header and first SAMPLE_ROWS rows, as the csv module reads them."""
    lines = _first_lines(client, job, SAMPLE_ROWS)
    header, *rows = list(csv.reader([lines[0].lstrip("\ufeff"), *lines[1:]]))
    return header, rows


def jsonl_sample(client: httpx.Client, job: jobs.Job) -> list[Any]:
    return [orjson.loads(line) for line in _first_lines(client, job, SAMPLE_ROWS)[:SAMPLE_ROWS]]


def csv_seconds(header: list[str], sample: list[list[str]], count: int) -> float:
    """The csv module writing `count` of these rows (cycled) with their header, UTF-8 with BOM,
    in this process: the floor for a worker writing the same rows."""
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        with (Path(directory) / "baseline.csv").open("w", encoding="utf-8-sig", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(header)
            writer.writerows(itertools.islice(itertools.cycle(sample), count))
        return time.perf_counter() - started


def orjson_seconds(sample: list[Any], count: int) -> float:
    """orjson writing `count` of these objects (cycled), one a line, in this process."""
    with tempfile.TemporaryDirectory() as directory:
        started = time.perf_counter()
        with (Path(directory) / "baseline.jsonl").open("wb") as file:
            for document in itertools.islice(itertools.cycle(sample), count):
                file.write(orjson.dumps(document))
                file.write(b"\n")
        return time.perf_counter() - started

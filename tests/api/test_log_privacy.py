"""Issue #5: no document numbers, e-mails or phones in the logs at INFO or above, while the logs
carry the request id that ties a request to its API log line and to its job's worker lines.

The API and the workers of this run are driven with customers whose data is found nowhere else
(lookups by document, a batch, lists filtered by document and by `q`, an export, a loyalty
report, a 404, a 400, a 422, a NUL that PostgreSQL cannot take, a duplicate customer created and
edited in /admin); then the lines their processes wrote meanwhile (harness/servers.py
`Process.log_path`, under test-output/) are read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from harness import servers
from harness.servers import wait_until
from services.export_worker import tasks
from shared import db, job_queue
from shared.jobs import JobType
from shared.models import Cliente
from shared.settings import Settings
from tests.admin_pages import login
from tests.conftest import Api, Workers
from tests.factories import make_cliente, make_compra, report_window, unique_digits, unique_number
from tests.jobs import settle

LEVELS = logging.getLevelNamesMapping()
# A day of its own for the loyalty report, in which no other test buys.
REPORT_DAY = report_window(days=1)


def private_cliente(engine: Engine, codigo: str) -> Cliente:
    """A customer whose document, e-mail and phone appear nowhere else, with a purchase that
    puts them in the loyalty report of REPORT_DAY."""
    phone = unique_digits(9)
    cliente = make_cliente(
        engine,
        codigo=codigo,
        correo=f"privado.{unique_digits(9)}@Correo-Reservado.example",
        telefono=f"+57 3{phone[:2]} {phone[2:5]} {phone[5:]}",
    )
    bought = REPORT_DAY.desde + timedelta(hours=17)
    make_compra(engine, cliente, monto="7500000.00", fecha_compra=bought)
    return cliente


def personal_values(cliente: Cliente) -> set[str]:
    """What must not be logged, in each form a line could hold it."""
    usuario = cliente.correo.split("@")[0]
    digits = "".join(c for c in cliente.telefono if c.isdigit())
    return {
        cliente.numero_documento,
        cliente.correo,
        cliente.correo.lower(),
        usuario,
        cliente.telefono,
        digits,
    }


@dataclass(frozen=True)
class LogLine:
    text: str
    entry: dict[str, Any] | None  # the JSON object; None for a line that is not one

    @classmethod
    def parse(cls, line: str) -> LogLine:
        try:
            entry = json.loads(line)
        except ValueError:
            return cls(line, None)
        return cls(line, entry if isinstance(entry, dict) else None)

    @property
    def shown_at_info(self) -> bool:
        # A line that is not JSON (a banner, a crash on stderr) has no level: it is always shown.
        return self.entry is None or LEVELS.get(self.entry.get("level", ""), 0) >= logging.INFO


class LogFiles:
    """The lines processes write from now on: their files are appended to by every run."""

    def __init__(self, processes: dict[str, servers.Process]) -> None:
        self.paths = {name: process.log_path for name, process in processes.items()}
        self.start = {name: _size(path) for name, path in self.paths.items()}

    def lines(self) -> dict[str, list[LogLine]]:
        return {name: self._lines(name) for name in self.paths}

    def _lines(self, name: str) -> list[LogLine]:
        with self.paths[name].open("rb") as log:
            log.seek(self.start[name])
            return [LogLine.parse(line) for line in log.read().decode().splitlines()]


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


@dataclass(frozen=True)
class Traffic:
    """What the module's requests left behind."""

    values: set[str]  # the personal data sent and answered
    lines: dict[str, list[LogLine]]  # by process: api, exports, reports, scheduler
    jobs: dict[JobType, tuple[str, str]]  # each job's request id and job id
    worker: dict[JobType, str]  # the process that ran each job


def new_request_id(what: str) -> str:
    return f"privacy-{what}-{uuid.uuid4().hex[:12]}"


def deliver_again(redis_url: str, job_type: JobType, job_id: str) -> None:
    job_queue.publish(job_id, job_type, redis_url=redis_url)


def wait_for_line(files: LogFiles, process: str, message: str, count: int = 1) -> None:
    def written() -> bool:
        return sum(message in line.text for line in files.lines()[process]) >= count

    wait_until(written, 10, message)


def duplicate_in_admin(api: Api, files: LogFiles, cc: Cliente, nit: Cliente) -> None:
    """Issue 12 item 13: a failed admin edit was logged at ERROR by sqladmin with psycopg's
    DETAIL line, which names the duplicated document number."""
    copy = {
        "tipo_documento": str(cc.tipo_documento_id),
        "numero_documento": cc.numero_documento,
        "nombre": "Copia",
        "apellido": "Duplicada",
        "correo": f"copia.{uuid.uuid4().hex[:8]}@example.com",
        "telefono": "3001234567",
        "activo": "y",
        "save": "Save",
    }
    admin = login(api)
    try:
        created = admin.post("/admin/cliente/create", data=copy)
        edited = admin.post(f"/admin/cliente/edit/{nit.id}", data=copy)
    finally:
        admin.close()
    for page in (created, edited):
        assert page.status_code == 400 and "duplicate key value" in page.text, page.text[-2000:]
    # sqladmin logs each failure (with its traceback) before answering; the lines are there.
    wait_for_line(files, "api", "duplicate key value violates unique constraint", count=2)


@pytest.fixture(scope="module")
def traffic(api: Api, workers: Workers, engine: Engine, redis_url: str) -> Traffic:
    workers.start()
    cc, nit = private_cliente(engine, "CC"), private_cliente(engine, "NIT")
    # 12 digits: the shape of no number the factories make, and a prefix nobody else gets.
    unknown = unique_number("CC") + "00"
    files = LogFiles(
        {
            "api": api.process,
            "exports": workers.exports,
            "reports": workers.reports,
            "bulk": workers.bulk,
            "scheduler": workers.scheduler,
        }
    )
    by_cc = {"tipo_documento": "CC", "numero_documento": cc.numero_documento}
    by_nit = {"tipo_documento": "NIT", "numero_documento": nit.numero_documento}
    lookups: list[tuple[str, int, dict[str, Any]]] = [
        ("GET /api/clientes/buscar", 200, {"params": by_cc}),
        ("GET /api/clientes/buscar", 200, {"params": by_nit}),
        ("POST /api/clientes/buscar/lote", 200, {"json": {"documentos": [by_cc, by_nit]}}),
        ("GET /api/clientes", 200, {"params": {"numero_documento": nit.numero_documento}}),
        ("GET /api/clientes", 200, {"params": {"q": cc.correo.split("@")[0]}}),
        ("GET /api/clientes/buscar", 404, {"params": {**by_cc, "numero_documento": unknown}}),
        ("GET /api/clientes/buscar", 400, {"params": {**by_cc, "numero_documento": unknown * 2}}),
        (
            "POST /api/clientes/buscar/lote",
            422,
            {"json": {"documentos": [{**by_cc, "numero_documento": unknown * 2}]}},
        ),
        # Text with NUL cannot reach PostgreSQL: it was a 500 whose log line held the parameters.
        (
            "GET /api/clientes/buscar",
            400,
            {"params": {**by_cc, "numero_documento": unknown + "\0"}},
        ),
    ]
    period = REPORT_DAY.params()
    creations = [
        (JobType.EXPORT_CLIENTE, f"/api/clientes/{cc.id}/exportar", {"formato": "csv"}),
        (
            JobType.REPORTE_FIDELIZACION,
            "/api/reporte-fidelizacion/generar",
            {**period, "monto_minimo": "0", "formato": "csv"},
        ),
        (
            JobType.EXPORTACION_MASIVA,
            "/api/exportaciones/",
            {
                "formato": "csv",
                "filtro": {"documentos": [by_cc, {**by_cc, "tipo_documento": "TI"}]},
            },
        ),
    ]
    worker = {
        JobType.EXPORT_CLIENTE: "exports",
        JobType.REPORTE_FIDELIZACION: "reports",
        JobType.EXPORTACION_MASIVA: "bulk",
    }
    jobs: dict[JobType, tuple[str, str]] = {}
    with api.client() as http:
        for operation, status, request in lookups:
            method, path = operation.split()
            headers = {"X-Request-ID": new_request_id("lookup")}
            answer = http.request(method, path, headers=headers, **request)
            assert answer.status_code == status, (operation, request, answer.text)
            if answer.status_code == 200:
                assert cc.numero_documento in answer.text or nit.numero_documento in answer.text
        duplicate_in_admin(api, files, cc, nit)
        for job_type, path, body in creations:
            request_id = new_request_id(job_type)
            created = http.post(path, json=body, headers={"X-Request-ID": request_id})
            assert created.status_code == 202, created.text
            job = settle(http, created.json()["id"])
            assert job["status"] == "succeeded", job
            jobs[job_type] = (request_id, job["id"])
            # The files do hold the data (it is the logs that must not), both customers' in
            # the report.
            content = http.get(f"/api/jobs/{job['id']}/download").content.decode("utf-8-sig")
            for cliente in (cc, nit) if job_type == JobType.REPORTE_FIDELIZACION else (cc,):
                assert cliente.numero_documento in content and cliente.correo in content
            # The worker logs its outcome just after announcing it: wait for the line.
            wait_for_line(files, worker[job_type], f"job {job['id']} succeeded")
            # A duplicate delivery (the scheduler republishes a job that waited long) is logged
            # too, by an attempt that claims nothing.
            deliver_again(redis_url, job_type, job["id"])
            wait_for_line(files, worker[job_type], f"job {job['id']}: nothing to claim")
    values = personal_values(cc) | personal_values(nit) | {unknown}
    return Traffic(values, files.lines(), jobs, worker)


def test_no_personal_data_in_any_line_at_info_or_above(traffic: Traffic) -> None:
    assert all(traffic.lines[process] for process in ("api", "exports", "reports", "bulk"))
    leaks = [
        (process, value, line.text)
        for process, lines in traffic.lines.items()
        for line in lines
        if line.shown_at_info
        for value in traffic.values
        if value in line.text
    ]
    assert leaks == []


@pytest.mark.parametrize("job_type", list(JobType))
def test_the_request_id_is_on_the_api_line_and_on_every_worker_line_of_its_job(
    traffic: Traffic, job_type: JobType
) -> None:
    request_id, job_id = traffic.jobs[job_type]
    api_lines = [line.entry for line in traffic.lines["api"] if line.entry and job_id in line.text]
    assert [entry["request_id"] for entry in api_lines] == [request_id], api_lines
    worker_lines = [
        line.entry
        for line in traffic.lines[traffic.worker[job_type]]
        if line.entry and line.entry["logger"] == tasks.__name__ and job_id in line.text
    ]
    messages = [entry["message"] for entry in worker_lines]
    assert f"job {job_id} claimed (attempt 1)" in messages
    assert f"job {job_id} succeeded" in messages
    assert any(message.startswith(f"job {job_id}: nothing to claim") for message in messages)
    assert {entry.get("request_id") for entry in worker_lines} == {request_id}, worker_lines


def test_a_failed_statement_does_not_carry_its_parameters(database_url: str) -> None:
    """SQLAlchemy writes a failed statement's parameters into the error, and so into the
    traceback of any log line about it; the engines of shared.db leave them out."""
    secret = f"privado.{uuid.uuid4().hex}@correo.example"
    engine = db.async_engine(Settings(database_url=database_url))

    async def fail() -> str:
        try:
            async with engine.connect() as connection:
                await connection.execute(
                    text("SELECT :correo || (1 / 0)::text"), {"correo": secret}
                )
        except DBAPIError as error:
            return str(error)
        finally:
            await engine.dispose()
        raise AssertionError("the division by zero did not fail")

    message = asyncio.run(fail())
    assert "division by zero" in message and secret not in message

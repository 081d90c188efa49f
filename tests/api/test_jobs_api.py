"""Jobs end to end: the real API, the real workers and scheduler, the real database and files."""

from __future__ import annotations

import csv
import io
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import openpyxl
import pytest
from sqlalchemy import Engine, text

from harness.servers import wait_until
from shared import storage
from shared.models import Cliente
from tests.conftest import Api, Workers
from tests.factories import make_cliente, make_compra, report_window
from tests.jobs import (
    compras_locked,
    download,
    facturas_of,
    job_column,
    job_count,
    new_key,
    settle,
    wait_until_running,
)

BOGOTA = ZoneInfo("America/Bogota")
JOB_FIELDS = {
    "id",
    "type",
    "status",
    "params",
    "progress",
    "rows_written",
    "created_at",
    "started_at",
    "finished_at",
    "expires_at",
    "error",
    "result",
}


@pytest.fixture(scope="module")
def cliente(engine: Engine) -> Cliente:
    """A customer with three purchases, and a neighbour whose data must never leak in."""
    target = make_cliente(engine, nombre="Ñusta", apellido="Quiñones")
    for monto, estado in (("1500000.50", "completada"), ("20.00", "pendiente"), ("7", "cancelada")):
        make_compra(engine, target, monto=monto, estado=estado)
    neighbour = make_cliente(engine)
    make_compra(engine, neighbour, numero_factura=f"VECINO-{uuid.uuid4().hex[:8]}")
    return target


# Exports end to end, one per format.


def test_csv_export_end_to_end(http: httpx.Client, engine: Engine, cliente: Cliente) -> None:
    created = http.post(f"/api/clientes/{cliente.id}/exportar/?formato=csv")
    assert created.status_code == 202, created.text
    job = created.json()
    assert set(job) == JOB_FIELDS
    assert created.headers["location"] == f"/api/jobs/{job['id']}"
    assert 1 <= int(created.headers["retry-after"]) <= 5
    assert (job["type"], job["status"]) == ("export_cliente", "queued")
    assert job["params"] == {"cliente_id": cliente.id, "formato": "csv"}
    assert uuid.UUID(job["id"]).version == 4

    done = settle(http, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"] == 100 and done["error"] is None
    assert done["started_at"] and done["finished_at"] and done["expires_at"]
    result = done["result"]
    assert result["filename"] == f"cliente_CC_{cliente.numero_documento}.csv"
    assert result["content_type"] == "text/csv; charset=utf-8"
    assert result["row_count"] == 3
    assert result["download_url"] == f"/api/jobs/{job['id']}/download"

    body = download(http, done).content
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    cells = {cell for row in rows for cell in row}
    assert cliente.numero_documento in cells and "Ñusta" in cells
    assert facturas_of(engine, cliente.id) <= cells
    assert not any(cell.startswith("VECINO-") for cell in cells), "another customer's data"


def test_excel_export_from_a_json_body_opens_in_openpyxl(
    http: httpx.Client, engine: Engine, cliente: Cliente
) -> None:
    created = http.post(f"/api/clientes/{cliente.id}/exportar", json={"formato": "xlsx"})
    assert created.status_code == 202, created.text
    assert created.json()["params"]["formato"] == "excel"
    done = settle(http, created.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["filename"].endswith(".xlsx")
    response = download(http, done)
    assert response.headers["content-type"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    workbook = openpyxl.load_workbook(io.BytesIO(response.content), read_only=True)
    sheet = workbook.worksheets[0]
    cells = {str(value) for row in sheet.iter_rows(values_only=True) for value in row if value}
    assert cliente.numero_documento in cells
    assert facturas_of(engine, cliente.id) <= cells


def test_txt_export_with_get_is_this_customers_report(
    http: httpx.Client, engine: Engine, cliente: Cliente
) -> None:
    created = http.get(f"/api/clientes/{cliente.id}/exportar", params={"formato": "txt"})
    assert created.status_code == 202, created.text
    done = settle(http, created.json()["id"])
    assert done["status"] == "succeeded", done
    text_body = download(http, done).content.decode("utf-8")
    assert done["result"]["content_type"] == "text/plain; charset=utf-8"
    assert cliente.numero_documento in text_body and "Ñusta" in text_body
    assert all(factura in text_body for factura in facturas_of(engine, cliente.id))
    assert "VECINO-" not in text_body


# The loyalty report end to end.


def test_loyalty_report_end_to_end(http: httpx.Client, engine: Engine) -> None:
    window = report_window(days=1)  # no other test buys in it
    day = window.desde
    qualifies = make_cliente(engine, nombre="Leal")
    below = make_cliente(engine, nombre="Casi")
    for monto in ("700000.00", "400000.01"):
        make_compra(engine, qualifies, monto=monto, fecha_compra=day + timedelta(hours=3))
    make_compra(engine, below, monto="1100000.00", fecha_compra=day + timedelta(hours=5))
    make_compra(engine, below, monto="9000000.00", estado="pendiente", fecha_compra=day)
    desde, hasta = window.params()["desde"], window.params()["hasta"]

    created = http.post(
        "/api/reporte-fidelizacion/generar/",
        json={"desde": desde, "hasta": hasta, "monto_minimo": 1100000, "formato": "csv"},
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["type"] == "reporte_fidelizacion"
    assert job["params"] == {
        "desde": f"{desde}T00:00:00-05:00",
        "hasta": f"{hasta}T00:00:00-05:00",
        "monto_minimo": "1100000.00",
        "formato": "csv",
    }
    assert int(created.headers["retry-after"]) >= 2, "reports take longer than exports"
    done = settle(http, job["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["filename"] == f"reporte_fidelizacion_{desde}_{hasta}.csv"
    assert done["result"]["row_count"] == 1
    rows = list(csv.reader(io.StringIO(download(http, done).content.decode("utf-8-sig"))))
    assert [row for row in rows if qualifies.numero_documento in row]
    assert not [row for row in rows if below.numero_documento in row]

    # The default format is a workbook.
    default = http.get("/api/reporte-fidelizacion/generar", params={"desde": desde, "hasta": hasta})
    assert default.status_code == 202 and default.json()["params"]["formato"] == "excel"
    excel = settle(http, default.json()["id"])
    assert excel["status"] == "succeeded", excel
    workbook = openpyxl.load_workbook(io.BytesIO(download(http, excel).content), read_only=True)
    assert workbook.worksheets[0].max_row >= 1


# Refusals.


@pytest.fixture
def own_key(engine: Engine) -> str:
    """A key of the test's own, with every scope: the jobs it makes are the test's alone."""
    return new_key(engine, ["read", "export", "admin"])


@pytest.fixture
def mine(api: Api, own_key: str) -> Iterator[httpx.Client]:
    with api.client(own_key) as http:
        yield http


def test_unknown_customer_is_404_and_makes_no_job(
    mine: httpx.Client, engine: Engine, own_key: str
) -> None:
    for response in (
        mine.post("/api/clientes/999999999999/exportar"),
        mine.get("/api/clientes/999999999999/exportar/", params={"formato": "txt"}),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    assert job_count(engine, own_key) == 0


def test_bad_formato_is_400_in_the_query_and_422_in_the_body(
    mine: httpx.Client, engine: Engine, own_key: str, cliente: Cliente
) -> None:
    http = mine
    query = http.get(f"/api/clientes/{cliente.id}/exportar", params={"formato": "pdf"})
    assert query.status_code == 400
    problem = query.json()
    assert problem["errors"][0]["field"] == "formato"
    assert all(name in problem["detail"] for name in ("csv", "excel", "txt"))
    body = http.post(f"/api/clientes/{cliente.id}/exportar", json={"formato": "pdf"})
    assert body.status_code == 422
    assert body.json()["errors"][0]["field"] == "formato"
    unknown_field = http.post(f"/api/clientes/{cliente.id}/exportar", json={"format": "csv"})
    assert unknown_field.status_code == 422
    report = http.get("/api/reporte-fidelizacion/generar", params={"formato": "txt"})
    assert report.status_code == 400 and "excel, csv" in report.json()["detail"]
    assert job_count(engine, own_key) == 0


def test_bad_report_dates_and_amounts_are_refused_clearly(
    mine: httpx.Client, engine: Engine, own_key: str
) -> None:
    http = mine
    path = "/api/reporte-fidelizacion/generar"
    garbage = http.get(path, params={"desde": "ayer"})
    assert garbage.status_code == 400 and garbage.json()["errors"][0]["field"] == "desde"
    backwards = http.get(path, params={"desde": "2026-11-02", "hasta": "2026-11-01"})
    assert backwards.status_code == 400
    assert "must be before hasta" in backwards.json()["detail"]
    same = http.post(path, json={"desde": "2026-11-01", "hasta": "2026-11-01T00:00:00-05:00"})
    assert same.status_code == 422
    negative = http.get(path, params={"monto_minimo": "-5"})
    assert negative.status_code == 400 and negative.json()["errors"][0]["field"] == "monto_minimo"
    assert http.post(path, json={"monto_minimo": "mucho"}).status_code == 422
    assert job_count(engine, own_key) == 0


def test_scopes_and_keys(api: Api, engine: Engine, cliente: Cliente) -> None:
    with api.client(new_key(engine, ["read"])) as read_only:
        assert read_only.post(f"/api/clientes/{cliente.id}/exportar").status_code == 403
        assert read_only.get("/api/reporte-fidelizacion/generar").status_code == 403
        assert read_only.get("/api/jobs").status_code == 403
    with api.client(None) as anonymous:
        missing = anonymous.get("/api/jobs")
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"


def test_malformed_or_unknown_job_ids_are_not_errors(http: httpx.Client) -> None:
    assert http.get("/api/jobs/not-a-uuid").status_code == 400
    assert http.get("/api/jobs/not-a-uuid/download").status_code == 400
    unknown = uuid.uuid4()
    for response in (
        http.get(f"/api/jobs/{unknown}"),
        http.get(f"/api/jobs/{unknown}/download"),
        http.delete(f"/api/jobs/{unknown}"),
    ):
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


# Idempotency and ownership.


def test_idempotency_key_returns_the_same_job_for_the_same_request(
    api: Api, http: httpx.Client, engine: Engine, cliente: Cliente
) -> None:
    key = {"Idempotency-Key": f"idem-{uuid.uuid4()}"}
    path = f"/api/clientes/{cliente.id}/exportar"
    first = http.post(path, params={"formato": "csv"}, headers=key)
    again = http.post(path, json={"formato": "csv"}, headers=key)  # the same request, in a body
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    with engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM jobs WHERE idempotency_key = :k"),
                {"k": key["Idempotency-Key"]},
            ).scalar_one()
            == 1
        )

    other_params = http.post(path, params={"formato": "txt"}, headers=key)
    assert other_params.status_code == 422
    assert other_params.headers["content-type"] == "application/problem+json"
    other_kind = http.post("/api/reporte-fidelizacion/generar", headers=key)
    assert other_kind.status_code == 422

    # The report's default window depends on "now": a replay is the same request all the same.
    report_key = {"Idempotency-Key": f"idem-{uuid.uuid4()}"}
    report = http.get("/api/reporte-fidelizacion/generar", headers=report_key)
    time.sleep(1.1)
    replay = http.get("/api/reporte-fidelizacion/generar", headers=report_key)
    assert replay.status_code == 202 and replay.json()["id"] == report.json()["id"]

    with api.client(new_key(engine, ["export"])) as other_key:
        theirs = other_key.post(path, params={"formato": "csv"}, headers=key)
        assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]

    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET created_at = now() - interval '25 hours' WHERE id = :id"),
            {"id": first.json()["id"]},
        )
    later = http.post(path, params={"formato": "txt"}, headers=key)
    assert later.status_code == 202, "after 24 h the key starts anew"
    assert later.json()["id"] != first.json()["id"]
    too_long = http.post(path, headers={"Idempotency-Key": "k" * 256})
    assert too_long.status_code == 400


def test_jobs_belong_to_the_key_that_made_them(
    api: Api, http: httpx.Client, engine: Engine, cliente: Cliente
) -> None:
    mine = settle(http, http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"])
    assert mine["status"] == "succeeded"
    with api.client(new_key(engine, ["export"])) as stranger:
        assert stranger.get(f"/api/jobs/{mine['id']}").status_code == 404
        assert stranger.get(f"/api/jobs/{mine['id']}/download").status_code == 404
        assert stranger.delete(f"/api/jobs/{mine['id']}").status_code == 404
        assert stranger.get("/api/jobs").json() == {"results": [], "next": None}
    assert http.get(f"/api/jobs/{mine['id']}").json()["status"] == "succeeded"


def test_list_is_newest_first_filtered_and_paginated(
    api: Api, workers: Workers, engine: Engine, cliente: Cliente
) -> None:
    workers.start()
    key = new_key(engine, ["export"])
    with api.client(key) as mine:
        made = [
            mine.post(f"/api/clientes/{cliente.id}/exportar", params={"formato": f}).json()["id"]
            for f in ("csv", "txt", "csv")
        ]
        report = mine.get("/api/reporte-fidelizacion/generar").json()["id"]
        newest_first = [report, *reversed(made)]

        seen: list[str] = []
        page = mine.get("/api/jobs", params={"limit": 2}).json()
        while True:
            assert len(page["results"]) <= 2
            seen += [job["id"] for job in page["results"]]
            if page["next"] is None:
                break
            page = mine.get(page["next"]).json()
        assert seen == newest_first

        exports = mine.get("/api/jobs/", params={"type": "export_cliente", "limit": 500}).json()
        assert [job["id"] for job in exports["results"]] == list(reversed(made))
        for job_id in newest_first:
            settle(mine, job_id)
        succeeded = mine.get("/api/jobs", params={"status": "succeeded"}).json()["results"]
        assert {job["id"] for job in succeeded} == set(newest_first)
        assert mine.get("/api/jobs", params={"status": "queued"}).json()["results"] == []

        bad_status = mine.get("/api/jobs", params={"status": "done"})
        assert bad_status.status_code == 400 and "succeeded" in bad_status.json()["detail"]
        bad_type = mine.get("/api/jobs", params={"type": "pdf"})
        assert bad_type.status_code == 400 and "reporte_fidelizacion" in bad_type.json()["detail"]
        assert mine.get("/api/jobs", params={"limit": 0}).status_code == 400
        assert mine.get("/api/jobs", params={"limit": 501}).status_code == 400
        assert mine.get("/api/jobs", params={"cursor": "garbage"}).status_code == 400
        next_url = mine.get("/api/jobs", params={"limit": 1}).json()["next"]
    with api.client(new_key(engine, ["export"])) as stranger:
        assert stranger.get(next_url).status_code == 400, "a cursor is its key's own"


# Waiting, cancelling, deleting, expiring.


def test_wait_answers_as_soon_as_the_job_ends_and_delete_cancels_it(
    http: httpx.Client, engine: Engine, workers: Workers, files: storage.Storage, cliente: Cliente
) -> None:
    answers: dict[str, tuple[float, dict[str, Any]]] = {}

    def wait_in_background(name: str, job_id: str) -> threading.Thread:
        def wait() -> None:
            started = time.monotonic()
            job = http.get(f"/api/jobs/{job_id}", params={"wait": 25}).json()
            answers[name] = (time.monotonic() - started, job)

        thread = threading.Thread(target=wait)
        thread.start()
        return thread

    path = f"/api/clientes/{cliente.id}/exportar"
    with compras_locked(engine):
        finishing = http.post(path).json()["id"]
        canceled = http.post(path, params={"formato": "txt"}).json()["id"]
        wait_until_running(http, finishing)
        wait_until_running(http, canceled)

        not_ready = http.get(f"/api/jobs/{finishing}/download")
        assert not_ready.status_code == 409 and int(not_ready.headers["retry-after"]) >= 1
        assert http.get(f"/api/jobs/{finishing}").headers["retry-after"]

        waiting = [
            wait_in_background("finishing", finishing),
            wait_in_background("canceled", canceled),
        ]
        time.sleep(1.5)
        assert not answers, "both requests must still be waiting"
        cancel_sent = time.monotonic()
        assert http.delete(f"/api/jobs/{canceled}").status_code == 204
        waiting[1].join(10)
        assert time.monotonic() - cancel_sent < 5, "wait must answer when the job is canceled"
        # Past the worker's next heartbeat (every second), which finds the job canceled.
        time.sleep(1.5)
        release_sent = time.monotonic()
    waiting[0].join(25)
    assert time.monotonic() - release_sent < 10, "wait must answer when the job ends"

    seconds, job = answers["canceled"]
    assert job["status"] == "canceled" and 1.0 < seconds < 8
    seconds, job = answers["finishing"]
    assert job["status"] == "succeeded" and 1.0 < seconds < 15
    assert "retry-after" not in http.get(f"/api/jobs/{finishing}").headers

    # The canceled job's worker notices, drops its work and stores nothing.
    wait_until(lambda: f"job {canceled}: stopped" in workers.exports.log(), 15, "worker stops")
    assert http.get(f"/api/jobs/{canceled}").json()["status"] == "canceled"
    assert http.get(f"/api/jobs/{canceled}/download").status_code == 409
    assert not files.exists(f"jobs/{canceled}/cliente_CC_{cliente.numero_documento}.txt")


def finished_export(
    http: httpx.Client, engine: Engine, files: storage.Storage, cliente: Cliente
) -> tuple[dict[str, Any], str]:
    """A succeeded export job, and the storage key of its file (which exists)."""
    done = settle(http, http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"])
    assert done["status"] == "succeeded", done
    key: str = job_column(engine, done["id"], "storage_key")
    assert files.exists(key)
    return done, key


def assert_job_folder_gone(files: storage.Storage, key: str) -> None:
    """No emptied jobs/<id>/<attempt>/ folders left behind the deleted file."""
    path = files.local_path(key)
    assert path is not None
    assert not path.parent.parent.exists(), "the job's emptied folders are removed"


def test_delete_of_a_finished_job_deletes_its_file_and_expires_it(
    http: httpx.Client, engine: Engine, files: storage.Storage, cliente: Cliente
) -> None:
    done, key = finished_export(http, engine, files, cliente)
    assert http.delete(f"/api/jobs/{done['id']}").status_code == 204
    assert not files.exists(key)
    assert_job_folder_gone(files, key)
    after = http.get(f"/api/jobs/{done['id']}").json()
    assert after["status"] == "expired"
    assert http.get(f"/api/jobs/{done['id']}/download").status_code == 410
    assert http.delete(f"/api/jobs/{done['id']}").status_code == 204, "idempotent"
    assert http.get(f"/api/jobs/{done['id']}").json()["status"] == "expired"


def test_the_scheduler_expires_results_past_their_time(
    http: httpx.Client, engine: Engine, files: storage.Storage, cliente: Cliente
) -> None:
    done, key = finished_export(http, engine, files, cliente)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": done["id"]},
        )
    wait_until(
        lambda: http.get(f"/api/jobs/{done['id']}").json()["status"] == "expired", 20, "expiry"
    )
    assert not files.exists(key)
    assert_job_folder_gone(files, key)
    gone = http.get(f"/api/jobs/{done['id']}/download")
    assert gone.status_code == 410 and gone.headers["content-type"] == "application/problem+json"


def test_the_request_id_follows_the_job_into_the_worker_log(
    http: httpx.Client, engine: Engine, workers: Workers, cliente: Cliente
) -> None:
    request_id = f"req-{uuid.uuid4().hex[:12]}"
    created = http.post(
        f"/api/clientes/{cliente.id}/exportar", headers={"X-Request-ID": request_id}
    )
    assert settle(http, created.json()["id"])["status"] == "succeeded"
    assert job_column(engine, created.json()["id"], "request_id") == request_id
    lines = [line for line in workers.exports.log().splitlines() if request_id in line]
    assert any(created.json()["id"] in line for line in lines)

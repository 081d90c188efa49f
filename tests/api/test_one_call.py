"""One-call results (SPEC §9): `?wait=N` / `Prefer: wait=N` on a job-creating request holds it
until the job ends; succeeded → 303 to the file, which clients that follow redirects (curl -L,
requests, httpx) fetch with the same key: the file from one request, as from the seed's
synchronous endpoint. Real API, workers, database and files."""

from __future__ import annotations

import csv
import io
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest
import requests
from sqlalchemy import Engine

from shared.models import Cliente
from tests.conftest import BOOTSTRAP_KEY, Api, assert_problem
from tests.factories import make_cliente, make_compra
from tests.jobs import compras_locked, settle

AUTHORIZATION = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


@pytest.fixture
def cliente(engine: Engine) -> Cliente:
    cliente = make_cliente(engine, nombre="Íngrid", apellido="Zuleta")
    for _ in range(10):
        make_compra(engine, cliente)
    return cliente


def assert_is_export_of(content: bytes, cliente: Cliente) -> None:
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert len(rows) == 1 + 10  # the header, then one row per purchase
    assert {cliente.numero_documento, "Íngrid"} <= {cell for row in rows for cell in row}


def one_call_url(api: Api, cliente: Cliente) -> str:
    return f"{api.url}/api/clientes/{cliente.id}/exportar/?formato=csv&wait=10"


@pytest.mark.usefixtures("workers")
def test_curl_follow_gets_the_file_in_one_call(api: Api, cliente: Cliente, tmp_path: Path) -> None:
    saved = tmp_path / "export.csv"
    key = f"Authorization: Bearer {BOOTSTRAP_KEY}"
    report = "%{http_code} %{num_redirects}"
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "-L",
            "-H",
            key,
            "-o",
            str(saved),
            "-w",
            report,
            one_call_url(api, cliente),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "200 1", done.stderr
    assert_is_export_of(saved.read_bytes(), cliente)


@pytest.mark.usefixtures("workers")
def test_requests_follows_to_the_file_with_its_key(api: Api, cliente: Cliente) -> None:
    response = requests.get(one_call_url(api, cliente), headers=AUTHORIZATION, timeout=60)
    assert response.status_code == 200, response.text
    assert [earlier.status_code for earlier in response.history] == [303]
    assert response.headers["content-disposition"].startswith("attachment;")
    assert_is_export_of(response.content, cliente)


@pytest.mark.usefixtures("workers")
def test_httpx_follows_a_post_with_prefer_wait(api: Api, cliente: Cliente) -> None:
    with api.client(follow_redirects=True) as http:
        response = http.post(
            f"/api/clientes/{cliente.id}/exportar",
            json={"formato": "csv"},
            headers={"Prefer": "respond-async, wait=10"},
        )
    assert response.status_code == 200, response.text
    assert [earlier.status_code for earlier in response.history] == [303]
    assert response.history[0].headers["preference-applied"] == "wait=10"
    assert_is_export_of(response.content, cliente)


def test_303_carries_the_succeeded_job(http: httpx.Client, cliente: Cliente) -> None:
    response = http.get(
        f"/api/clientes/{cliente.id}/exportar", params={"formato": "csv", "wait": 10}
    )
    assert response.status_code == 303, response.text
    job = response.json()
    assert job["status"] == "succeeded"
    assert response.headers["location"] == job["result"]["download_url"]
    assert response.headers["preference-applied"] == "wait=10"
    assert "retry-after" not in response.headers


def test_a_report_in_one_call(http: httpx.Client) -> None:
    response = http.post(
        "/api/reporte-fidelizacion/generar", json={"formato": "csv"}, headers={"Prefer": "wait=20"}
    )
    assert response.status_code == 303, response.text
    assert response.json()["type"] == "reporte_fidelizacion"
    assert http.get(response.headers["location"]).status_code == 200


def test_not_done_in_time_is_the_usual_202(
    http: httpx.Client, engine: Engine, cliente: Cliente
) -> None:
    with compras_locked(engine):  # the job waits for the lock: it cannot end within 1 s
        started = time.monotonic()
        response = http.get(f"/api/clientes/{cliente.id}/exportar", params={"wait": 1})
        held = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert held >= 1
    assert response.headers["preference-applied"] == "wait=1"
    job = response.json()
    assert job["status"] in {"queued", "running"}
    assert response.headers["location"] == f"/api/jobs/{job['id']}"
    assert settle(http, job["id"])["status"] == "succeeded"


def test_without_wait_nothing_is_held(http: httpx.Client, cliente: Cliente) -> None:
    for headers in ({}, {"Prefer": "wait=soon"}, {"Prefer": "respond-async"}):
        response = http.post(f"/api/clientes/{cliente.id}/exportar", headers=headers)
        assert response.status_code == 202, response.text
        assert "preference-applied" not in response.headers


@pytest.mark.parametrize("wait", ["31", "-1", "soon"])
def test_a_bad_wait_is_400_naming_it(http: httpx.Client, cliente: Cliente, wait: str) -> None:
    response = http.get(f"/api/clientes/{cliente.id}/exportar", params={"wait": wait})
    assert_problem(response, 400, field="wait")


def test_a_replayed_one_call_redirects_to_the_same_file(
    http: httpx.Client, cliente: Cliente
) -> None:
    headers = {"Idempotency-Key": f"one-call-{uuid.uuid4()}", "Prefer": "wait=10"}
    path = f"/api/clientes/{cliente.id}/exportar"
    first = http.post(path, headers=headers)
    again = http.post(path, headers=headers)
    assert (first.status_code, again.status_code) == (303, 303), again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]

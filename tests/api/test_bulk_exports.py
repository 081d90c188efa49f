"""Bulk exports (SPEC §10) end to end: the real API, the bulk worker, PostgreSQL and the files.

The run's database holds every other test's customers too, so each test picks its own: by ids,
by documents, or by a word in the names that only its customers carry (the `q` filter), with
the filter under test on top.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import openpyxl
import pytest
from sqlalchemy import Engine, text

from harness.servers import wait_until
from services.query_api import middleware
from shared import storage
from shared.job_params import MAX_LISTA
from shared.models import Cliente
from tests.conftest import assert_problem
from tests.factories import make_cliente, make_compra, unique_digits
from tests.jobs import TERMINAL, download, new_key, settle

CSV_HEADER = [
    "Id",
    "Tipo de documento",
    "Número de documento",
    "Nombre",
    "Apellido",
    "Correo",
    "Teléfono",
    "Fecha de registro",
    "Activo",
    "Compras completadas",
    "Monto de compras completadas",
]
COMPRA_HEADER = ["Número de factura", "Fecha de compra", "Monto", "Estado", "Descripción"]


def export(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """Create the bulk export and follow it to its end; it must succeed."""
    created = http.post("/api/exportaciones/", json=body)
    assert created.status_code == 202, created.text
    assert created.headers["location"] == f"/api/jobs/{created.json()['id']}"
    assert int(created.headers["retry-after"]) >= 0
    job = settle(http, created.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def csv_rows(http: httpx.Client, job: dict[str, Any]) -> list[list[str]]:
    content = download(http, job).content
    assert content.startswith(b"\xef\xbb\xbf"), "UTF-8 with BOM"
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert content.count(b"\r\n") >= len(rows), "CRLF line ends (RFC 4180)"
    return rows


def word() -> str:
    """A word no other customer's name holds: `q` then selects this test's customers only."""
    return f"Zq{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def family(engine: Engine) -> dict[str, Any]:
    """Three customers sharing a surname word: one with purchases (one pending), one inactive
    NIT without purchases, one registered long ago whose name looks like a formula."""
    surname = word()
    long_ago = datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
    ana = make_cliente(engine, nombre="Ana", apellido=surname)
    nit = make_cliente(engine, codigo="NIT", nombre="Empresa", apellido=surname, activo=False)
    formula = make_cliente(
        engine, nombre="=HYPERLINK(1)", apellido=surname, fecha_registro=long_ago
    )
    now = datetime.now(UTC)
    make_compra(engine, ana, monto="1500000.50", fecha_compra=now - timedelta(days=1))
    make_compra(engine, ana, monto="20.00", fecha_compra=now - timedelta(days=2))
    make_compra(engine, ana, monto="7.00", estado="pendiente", fecha_compra=now - timedelta(days=3))
    return {"q": surname, "ana": ana, "nit": nit, "formula": formula, "long_ago": long_ago}


def ids_of(rows: list[list[str]]) -> list[int]:
    return [int(row[0]) for row in rows[1:]]


def test_csv_one_row_per_customer_by_id(http: httpx.Client, family: dict[str, Any]) -> None:
    job = export(http, {"formato": "csv", "filtro": {"q": family["q"]}})
    assert job["type"] == "exportacion_masiva"
    assert job["params"] == {
        "formato": "csv",
        "incluir_compras": False,
        "filtro": {"q": family["q"]},
    }
    rows = csv_rows(http, job)
    assert rows[0] == CSV_HEADER
    ana: Cliente = family["ana"]
    by_id = {int(row[0]): row for row in rows[1:]}
    assert (
        ids_of(rows)
        == sorted(by_id)
        == sorted(c.id for c in (ana, family["nit"], family["formula"]))
    )
    assert by_id[ana.id][1:3] == ["CC", ana.numero_documento]
    assert by_id[ana.id][8:] == ["sí", "2", "1500020.50"], "completed purchases only"
    assert by_id[family["nit"].id][1] == "NIT" and by_id[family["nit"].id][8:] == [
        "no",
        "0",
        "0.00",
    ]
    formula = by_id[family["formula"].id]
    assert formula[3] == "'=HYPERLINK(1)", "a formula is neutralised"
    assert formula[7] == "2001-02-02 23:05:06", "dates in the business time zone"
    assert job["result"]["row_count"] == 3 and job["rows_written"] == 3
    assert job["result"]["filename"].startswith("exportacion_masiva_")
    assert job["result"]["filename"].endswith(f"_{job['id'].replace('-', '')[:8]}.csv")


def test_csv_quotes_every_text_field_and_leaves_numbers_bare(
    http: httpx.Client, family: dict[str, Any]
) -> None:
    ana: Cliente = family["ana"]
    job = export(http, {"filtro": {"ids": [ana.id]}})
    lines = download(http, job).content.decode("utf-8-sig").split("\r\n")
    assert lines[1].startswith(f'{ana.id},"CC","{ana.numero_documento}","Ana",')
    assert lines[1].endswith(',"sí",2,1500020.50')


def test_csv_with_purchases_repeats_the_customer_on_each(
    http: httpx.Client, family: dict[str, Any]
) -> None:
    job = export(http, {"formato": "csv", "incluir_compras": True, "filtro": {"q": family["q"]}})
    rows = csv_rows(http, job)
    assert rows[0] == CSV_HEADER + COMPRA_HEADER
    ana: Cliente = family["ana"]
    mine = [row for row in rows[1:] if int(row[0]) == ana.id]
    assert [row[13] for row in mine] == ["1500000.50", "20.00", "7.00"], "newest first"
    assert {tuple(row[:11]) for row in mine} == {tuple(mine[0][:11])}, "the customer repeated"
    assert [row[14] for row in mine] == ["completada", "completada", "pendiente"]
    nit = [row for row in rows[1:] if int(row[0]) == family["nit"].id]
    assert len(nit) == 1 and nit[0][11:] == ["", "", "", "", ""], "no purchases: one row"
    assert job["result"]["row_count"] == len(rows) - 1 == 5


def test_jsonl_one_object_a_line_money_as_strings(
    http: httpx.Client, family: dict[str, Any]
) -> None:
    job = export(http, {"formato": "jsonl", "filtro": {"q": family["q"]}})
    response = download(http, job)
    assert job["result"]["content_type"] == "application/x-ndjson; charset=utf-8"
    assert job["result"]["filename"].endswith(".jsonl")
    lines = response.content.decode().splitlines()
    documents = [json.loads(line) for line in lines]
    ana: Cliente = family["ana"]
    assert [d["id"] for d in documents] == sorted(d["id"] for d in documents)
    first = next(d for d in documents if d["id"] == ana.id)
    assert first["tipo_documento"]["codigo"] == "CC"
    assert first["nombre_completo"] == f"Ana {family['q']}"
    assert first["total_compras"] == 2 and first["monto_total_compras"] == "1500020.50"
    assert datetime.fromisoformat(first["fecha_registro"]).tzinfo is not None
    assert "compras" not in first
    nobody = export(http, {"formato": "jsonl", "filtro": {"q": word()}})
    assert download(http, nobody).content == b"" and nobody["result"]["row_count"] == 0

    job = export(http, {"formato": "jsonl", "incluir_compras": True, "filtro": {"ids": [ana.id]}})
    (line,) = download(http, job).content.decode().splitlines()
    document = json.loads(line)
    assert [c["monto"] for c in document["compras"]] == ["1500000.50", "20.00", "7.00"]
    assert document == http.get(f"/api/clientes/{ana.id}/").json(), "the detail, every field"
    assert set(document["compras"][0]) == {
        "id",
        "numero_factura",
        "fecha_compra",
        "monto",
        "descripcion",
        "estado",
    }


def test_excel_by_the_rules_of_every_xlsx(http: httpx.Client, family: dict[str, Any]) -> None:
    job = export(http, {"formato": "xlsx", "incluir_compras": True, "filtro": {"q": family["q"]}})
    assert job["params"]["formato"] == "excel"
    workbook = openpyxl.load_workbook(io.BytesIO(download(http, job).content))
    sheet = workbook.worksheets[0]
    header = [cell.value for cell in sheet[1]]
    assert header == CSV_HEADER + COMPRA_HEADER
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    ana = [row for row in rows if row[0] == family["ana"].id]
    assert ana[0][13] == 1500000.5 and isinstance(ana[0][12], datetime)
    assert sheet.cell(row=2, column=11).number_format == '"$" #,##0.00'
    formula = next(row for row in rows if row[0] == family["formula"].id)
    assert formula[3] == "=HYPERLINK(1)", "stored as text, never as a formula"
    parameters = {row[0]: row[1] for row in workbook.worksheets[1].iter_rows(values_only=True)}
    assert parameters["Formato"] == "excel" and parameters["Filtro: q"] == family["q"]


def inputs_kept(engine: Engine, job_id: str) -> int:
    """How many rows of id and document lists the database still holds for the job."""
    with engine.connect() as connection:
        kept: int = connection.execute(
            text("SELECT count(*) FROM job_inputs WHERE job_id = :id"), {"id": job_id}
        ).scalar_one()
    return kept


def test_documents_resolve_and_the_unknown_are_counted(
    http: httpx.Client, engine: Engine, family: dict[str, Any]
) -> None:
    ana: Cliente = family["ana"]
    nit: Cliente = family["nit"]
    documentos = [
        {"tipo_documento": "nit", "numero_documento": f" {nit.numero_documento} "},
        {"tipo_documento": "CC", "numero_documento": ana.numero_documento},
        {"tipo_documento": "CC", "numero_documento": "1" + unique_digits(9)},
        {"tipo_documento": "NIT", "numero_documento": ana.numero_documento},  # wrong type
    ]
    job = export(http, {"filtro": {"documentos": documentos}})
    assert ids_of(csv_rows(http, job)) == sorted([ana.id, nit.id])
    assert job["result"]["not_found"] == 2
    assert job["params"]["filtro"] == {"documentos_count": 4}
    assert len(job["params"]["listas_sha256"]) == 64
    assert inputs_kept(engine, job["id"]) == 0, "the document list went with the job's end"


@pytest.mark.parametrize(
    ("filtro", "expected"),
    [
        ({"activo": False}, ["nit"]),
        ({"tipo_documento": "nit"}, ["nit"]),
        ({"registrados_hasta": "2010-01-01"}, ["formula"]),
        ({"registrados_desde": "2010-01-01"}, ["ana", "nit"]),
        ({"compras_desde": (datetime.now(UTC) - timedelta(days=5)).isoformat()}, ["ana"]),
        ({"compras_hasta": "2000-01-01"}, []),
        ({"ids": "family"}, ["ana", "formula"]),
    ],
)
def test_each_filter(
    http: httpx.Client, family: dict[str, Any], filtro: dict[str, Any], expected: list[str]
) -> None:
    if filtro.get("ids") == "family":
        filtro = {"ids": [family["ana"].id, family["formula"].id, 2**62]}
    job = export(http, {"filtro": {"q": family["q"], **filtro}})
    assert ids_of(csv_rows(http, job)) == sorted(family[name].id for name in expected)


def test_a_pending_purchase_does_not_count_for_the_purchase_window(
    http: httpx.Client, engine: Engine
) -> None:
    surname = word()
    only_pending = make_cliente(engine, apellido=surname)
    make_compra(engine, only_pending, estado="pendiente")
    job = export(http, {"filtro": {"q": surname, "compras_desde": "2000-01-01"}})
    assert ids_of(csv_rows(http, job)) == []
    assert job["result"]["row_count"] == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"filtro": {"documentos": [{"tipo_documento": "CC", "numero_documento": "1"}] * 3
                     + [{"tipo_documento": "XX", "numero_documento": "1"}]}},
         "filtro.documentos[3].tipo_documento"),
        ({"filtro": {"documentos": [{"tipo_documento": "CC"}]}},
         "filtro.documentos[0].numero_documento"),
        ({"filtro": {"ids": [1, "2"]}}, "filtro.ids[1]"),
        ({"filtro": {"ids": []}}, "filtro.ids"),
        ({"filtro": {"ids": list(range(1, 100_002))}}, "filtro.ids"),
        ({"filtro": {"activo": "yes"}}, "filtro.activo"),
        ({"filtro": {"registrados_desde": "ayer"}}, "filtro.registrados_desde"),
        ({"filtro": {"compras_desde": "2026-02-01", "compras_hasta": "2026-01-01"}},
         "filtro.compras_desde"),
        ({"filtro": {"color": "rojo"}}, "filtro.color"),
        ({"formato": "txt"}, "formato"),
        ({"incluir_compras": "sí"}, "incluir_compras"),
    ],
)  # fmt: skip
def test_bad_bodies_are_422_naming_the_field(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    assert_problem(http.post("/api/exportaciones", json=body), 422, field=field)


def test_not_json_is_422(http: httpx.Client) -> None:
    response = http.post(
        "/api/exportaciones", content=b"{", headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, field="body")


def test_scope_and_ownership(
    http: httpx.Client, api: Any, engine: Engine, family: dict[str, Any]
) -> None:
    with api.client(key=new_key(engine, ["read"])) as read_only:
        assert_problem(read_only.post("/api/exportaciones", json={}), 403)
    job = export(http, {"filtro": {"ids": [family["ana"].id]}})
    with api.client(key=new_key(engine, ["export"])) as stranger:
        assert_problem(stranger.get(f"/api/jobs/{job['id']}"), 404)
        assert_problem(stranger.get(f"/api/jobs/{job['id']}/download"), 404)
        assert_problem(stranger.delete(f"/api/jobs/{job['id']}"), 404)


def test_idempotency_key_and_one_call(http: httpx.Client, family: dict[str, Any]) -> None:
    body = {"filtro": {"ids": [family["ana"].id]}}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = http.post("/api/exportaciones", json=body, headers=key)
    again = http.post("/api/exportaciones", json=body, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = http.post("/api/exportaciones", json={"filtro": {"ids": [2**62]}}, headers=key)
    assert_problem(other, 422)
    one_call = http.post("/api/exportaciones?wait=20", json=body, follow_redirects=True)
    assert one_call.status_code == 200
    assert one_call.history[0].status_code == 303
    assert one_call.content.decode("utf-8-sig").splitlines()[0].startswith('"Id",')


def test_money_sums_stay_exact(http: httpx.Client, engine: Engine) -> None:
    surname = word()
    cliente = make_cliente(engine, apellido=surname)
    for monto in ("0.10", "0.20", "9999999999999.99"):
        make_compra(engine, cliente, monto=monto)
    job = export(http, {"filtro": {"q": surname}})
    (row,) = csv_rows(http, job)[1:]
    assert Decimal(row[10]) == Decimal("10000000000000.29")


def test_100000_documents_are_accepted_and_resolved(
    http: httpx.Client, family: dict[str, Any]
) -> None:
    known = [family["ana"], family["nit"]]
    documentos = [
        {"tipo_documento": codigo, "numero_documento": c.numero_documento}
        for codigo, c in zip(("CC", "NIT"), known, strict=True)
    ]
    documentos += [
        {"tipo_documento": "CC", "numero_documento": f"9{number:09d}"}
        for number in range(MAX_LISTA - len(documentos))
    ]
    body = json.dumps({"filtro": {"documentos": documentos}}).encode()
    assert len(body) > 5_000_000
    job = export(http, {"filtro": {"documentos": documentos}})
    assert ids_of(csv_rows(http, job)) == sorted(c.id for c in known)
    assert job["result"]["not_found"] == MAX_LISTA - len(known)
    assert job["params"]["filtro"] == {"documentos_count": MAX_LISTA}


def test_only_this_endpoint_takes_large_bodies(http: httpx.Client) -> None:
    documentos = [{"tipo_documento": "CC", "numero_documento": "1020304050"}] * 30_000
    lote = http.post("/api/clientes/buscar/lote", json={"documentos": documentos})
    assert_problem(lote, 413)
    too_large = b" " * (middleware.MAX_BULK_BODY_BYTES + 1)
    headers = {"content-type": "application/json"}
    assert_problem(http.post("/api/exportaciones/", content=too_large, headers=headers), 413)


@pytest.fixture(scope="module")
def busy(engine: Engine) -> Cliente:
    """A customer with enough purchases (pending, years back: nothing else counts them) that an
    excel export of them, one row each, runs for seconds."""
    cliente = make_cliente(engine, apellido=word())
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO compras (cliente_id, numero_factura, fecha_compra, monto, estado)"
                " SELECT :id, 'B' || :id || '-' || n, '2019-01-01'::timestamptz + n * interval"
                " '1 minute', 1000, 'pendiente' FROM generate_series(1, :n) AS n"
            ),
            {"id": cliente.id, "n": BUSY_ROWS},
        )
    return cliente


BUSY_ROWS = 100_000


def _big(http: httpx.Client, busy: Cliente) -> str:
    body = {"formato": "excel", "incluir_compras": True, "filtro": {"ids": [busy.id]}}
    created = http.post("/api/exportaciones", json=body)
    assert created.status_code == 202
    job_id: str = created.json()["id"]
    return job_id


def test_progress_and_rows_written_move_and_exports_do_not_wait(
    http: httpx.Client, busy: Cliente, family: dict[str, Any]
) -> None:
    job_id = _big(http, busy)
    seen: list[tuple[int, int]] = []
    exported = False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = http.get(f"/api/jobs/{job_id}").json()
        if job["status"] == "running" and job["rows_written"] is not None:
            seen.append((job["progress"], job["rows_written"]))
            if not exported:
                # The bulk worker is busy: a per-customer export is served meanwhile.
                one_call = http.get(f"/api/clientes/{family['ana'].id}/exportar?wait=20")
                assert one_call.status_code == 303, one_call.text
                assert http.get(f"/api/jobs/{job_id}").json()["status"] == "running"
                exported = True
        if job["status"] in TERMINAL:
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert exported, "the bulk job was never seen running"
    assert job["rows_written"] == job["result"]["row_count"] == BUSY_ROWS
    assert seen == sorted(seen), "progress and rows_written never go back"
    assert any(0 < rows < BUSY_ROWS for _, rows in seen), f"no count part-way: {seen}"
    assert any(0 < percent < 100 for percent, _ in seen), f"no step part-way: {seen}"


def test_cancel_mid_way_leaves_nothing(
    http: httpx.Client,
    engine: Engine,
    busy: Cliente,
    files: storage.Storage,
    family: dict[str, Any],
) -> None:
    job_id = _big(http, busy)
    wait_until(
        lambda: (http.get(f"/api/jobs/{job_id}").json()["rows_written"] or 0) > 0,
        120,
        "rows written",
    )
    assert inputs_kept(engine, job_id) == 1, "the running export reads its list"
    assert http.delete(f"/api/jobs/{job_id}").status_code == 204
    job = settle(http, job_id)
    assert job["status"] == "canceled" and job["result"] is None
    assert_problem(http.get(f"/api/jobs/{job_id}/download"), 409)
    # The worker stopped and threw its file away; it takes the next job at once.
    export(http, {"filtro": {"ids": [family["ana"].id]}})
    assert list(files.list_files(f"jobs/{job_id}/")) == []
    assert inputs_kept(engine, job_id) == 0

"""Progress moves for every job type (SPEC §9): a per-customer export is seen part-way through
its purchases, through the real API and worker, not only at 0 and 100."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import Engine, text

from tests.factories import make_cliente
from tests.jobs import TERMINAL

PURCHASES = 100_000  # an Excel file of this many rows takes the worker a few seconds


def test_an_export_progresses_through_its_purchases(http: httpx.Client, engine: Engine) -> None:
    cliente = make_cliente(engine)
    with engine.begin() as connection:
        # Pending and years back: nothing another test counts (reports take completed ones).
        connection.execute(
            text(
                "INSERT INTO compras (cliente_id, numero_factura, fecha_compra, monto, estado)"
                " SELECT :id, 'P' || :id || '-' || n, '2020-01-01'::timestamptz + n * interval"
                " '1 minute', 1000, 'pendiente' FROM generate_series(1, :n) AS n"
            ),
            {"id": cliente.id, "n": PURCHASES},
        )
    created = http.post(f"/api/clientes/{cliente.id}/exportar", params={"formato": "excel"})
    job_id = created.json()["id"]
    seen: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        job = http.get(f"/api/jobs/{job_id}").json()
        if job["status"] == "running" and job["progress"] is not None:
            seen.append(job["progress"])
        if job["status"] in TERMINAL:
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded", job
    assert job["progress"] == 100 and job["result"]["row_count"] == PURCHASES
    assert seen == sorted(seen), "progress never goes back"
    assert any(0 < percent < 100 for percent in seen), f"no step between 0 and 100: {set(seen)}"

"""Redis really stopped under a running API and workers, in the middle of a job: the job ends,
lookups and job creation carry on, `/ready` names what is down, and once Redis is back (empty)
the job accepted meanwhile runs, all without restarting anything.

The module has its own redis-server, database, API and workers. Stopping the run's Redis would
disturb the other tests, and the run's scheduler, sweeping the run's database, would publish
this module's job to the run's Redis and run it while ours is down.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator

import httpx
import pytest

from harness import servers
from services.query_api import ratelimit
from tests.factories import make_cliente, make_compra
from tests.jobs import (
    compras_locked,
    download,
    facturas_of,
    job_column,
    query_waiting_on_compras,
    settle,
)
from tests.stacks import Stack, own_stack

# An answer slower than this while Redis is down means something waits on Redis.
OUTAGE_ANSWER_SECONDS = 3.0
RATE_LIMIT_HEADERS = ("ratelimit", "ratelimit-policy")


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with own_stack(service_env, tmp_path_factory.mktemp("redis-fault"), "redis-fault") as stack:
        yield stack


def test_lookups_and_jobs_carry_on_while_redis_is_down_and_recover_by_themselves(
    stack: Stack,
) -> None:
    cliente = make_cliente(stack.engine)
    for _ in range(2):
        make_compra(stack.engine, cliente)
    buscar = {"tipo_documento": "CC", "numero_documento": cliente.numero_documento}
    processes = (stack.api.process, *stack.workers.all)
    pids = [process.pid for process in processes]

    def nothing_restarted() -> None:
        assert [process.pid for process in processes] == pids
        assert not [process.name for process in processes if not process.alive()], "exited"

    with stack.api.client() as http:
        before = http.get("/api/clientes/buscar", params=buscar)
        assert before.status_code == 200, before.text
        assert all(header in before.headers for header in RATE_LIMIT_HEADERS)

        # Redis goes away in the middle of a job: claimed, its message not yet acknowledged.
        with compras_locked(stack.engine):
            running = http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"]
            servers.wait_until(lambda: query_waiting_on_compras(stack.engine), 30, "a job mid-run")
            stack.redis.stop()
        try:
            # The job ends in PostgreSQL all the same, and its worker carries on.
            servers.wait_until(
                lambda: job_column(stack.engine, running, "status") == "succeeded", 30, "the job"
            )
            # The API process counts the requests it had reserved before the outage (its lease,
            # ratelimit.py), then the limiter fails open: no quota to tell, no quota headers.
            for _ in range(ratelimit.LEASE_MAX + 5):
                lookup, elapsed = timed(http, "GET", "/api/clientes/buscar", params=buscar)
                assert lookup.status_code == 200, lookup.text
                assert lookup.content == before.content
                assert elapsed < OUTAGE_ANSWER_SECONDS, f"a lookup took {elapsed:.1f}s"
            assert not [h for h in RATE_LIMIT_HEADERS if h in lookup.headers], lookup.headers

            ready, elapsed = timed(http, "GET", "/ready")
            assert ready.status_code == 503, ready.text
            assert ready.json()["status"] == "unavailable"
            assert ready.json()["checks"]["redis"].startswith("down")
            assert ready.json()["checks"]["postgresql"] == "ok"
            assert elapsed < OUTAGE_ANSWER_SECONDS, f"/ready took {elapsed:.1f}s"
            assert http.get("/health").status_code == 200

            path = f"/api/clientes/{cliente.id}/exportar"
            created, elapsed = timed(http, "POST", path, params={"formato": "csv"})
            assert created.status_code == 202, created.text
            assert elapsed < OUTAGE_ANSWER_SECONDS, f"the 202 took {elapsed:.1f}s"
            job_id = created.json()["id"]
            assert f"job {job_id} accepted but not published" in stack.api.process.log()
            job = http.get(f"/api/jobs/{job_id}")
            assert job.status_code == 200 and job.json()["status"] == "queued", job.text
            # `?wait=` cannot subscribe to the job's events: it polls instead, and still ends.
            waited, elapsed = timed(http, "GET", f"/api/jobs/{job_id}", params={"wait": 2})
            assert waited.status_code == 200 and waited.json()["status"] == "queued"
            assert elapsed < 2 + OUTAGE_ANSWER_SECONDS, f"?wait=2 took {elapsed:.1f}s"
        finally:
            stack.redis.start()  # same port, nothing kept: the job's message is gone for good
        servers.wait_for_redis(stack.redis_port)

        servers.wait_until(lambda: http.get("/ready").status_code == 200, 10, "/ready")
        nothing_restarted()  # a worker that lost Redis mid-job used to exit here (broker.py)
        again = http.get("/api/clientes/buscar", params=buscar)
        assert all(header in again.headers for header in RATE_LIMIT_HEADERS)
        # Only the scheduler can publish the job again; the workers reconnect by themselves.
        done = settle(http, job_id, within=45)
        assert done["status"] == "succeeded", done
        rows = list(csv.reader(io.StringIO(download(http, done).content.decode("utf-8-sig"))))
        cells = {cell for row in rows for cell in row}
        assert cliente.numero_documento in cells
        assert facturas_of(stack.engine, cliente.id) <= cells
        # The API publishes again at once, and the report worker reconnected by itself too.
        report = http.post("/api/reporte-fidelizacion/generar", json={"formato": "csv"})
        assert report.status_code == 202, report.text
        report_id = report.json()["id"]
        assert f"job {report_id} accepted but not published" not in stack.api.process.log()
        assert settle(http, report_id, within=45)["status"] == "succeeded"

    assert job_column(stack.engine, running, "attempts") == 1, "the job under way ran once"
    nothing_restarted()


def timed(
    http: httpx.Client, method: str, path: str, **kwargs: object
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started

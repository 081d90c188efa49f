"""An accepted job is never lost and runs to one result: really killing a worker mid-report,
really emptying Redis, really delivering a message three times."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine

from harness import servers
from harness.servers import wait_until
from shared import job_queue, storage
from shared.jobs import JobType
from shared.models import Cliente
from tests.conftest import BOOTSTRAP_KEY, Workers
from tests.factories import make_cliente, make_compra, report_window
from tests.jobs import compras_locked, job_column, only_file_of, query_waiting_on_compras, settle


@pytest.fixture
def broker(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


@contextmanager
def report_stuck_mid_run(client: httpx.Client, engine: Engine) -> Iterator[tuple[str, Cliente]]:
    """A loyalty report (of a customer who qualifies, on a day no other test uses) caught
    mid-run for as long as the block lasts: claimed, heartbeating, its query waiting inside
    PostgreSQL. Yields the job's id and the customer."""
    window = report_window(days=1)
    leal = make_cliente(engine)
    make_compra(engine, leal, monto="9000000.00", fecha_compra=window.desde + timedelta(hours=1))
    params = {**window.params(), "formato": "csv"}
    with compras_locked(engine):
        job_id = client.post("/api/reporte-fidelizacion/generar", json=params).json()["id"]
        wait_until(lambda: job_column(engine, job_id, "status") == "running", 30, "claim")
        wait_until(lambda: query_waiting_on_compras(engine), 30, "report query under way")
        yield job_id, leal


def test_a_report_survives_its_worker_killed_mid_run(
    client: httpx.Client, engine: Engine, fault_workers: Workers, files: storage.Storage
) -> None:
    with report_stuck_mid_run(client, engine) as (job_id, leal):
        fault_workers.reports.kill()
    assert job_column(engine, job_id, "status") == "running", "nobody can say it died yet"

    fault_workers.start()  # a new report worker; the scheduler finds the stale heartbeat
    done = settle(client, job_id, within=90)
    assert done["status"] == "succeeded", done
    assert job_column(engine, job_id, "attempts") == 2
    assert done["result"]["row_count"] >= 1
    only_file_of(files, job_column(engine, job_id, "storage_key"))
    assert leal.numero_documento in client.get(done["result"]["download_url"]).text


def test_jobs_accepted_while_redis_is_emptied_still_finish(
    client: httpx.Client,
    engine: Engine,
    fault_workers: Workers,
    broker: redis.Redis,
) -> None:
    fault_workers.stop()  # no worker, no scheduler: the messages stay in Redis
    cliente = make_cliente(engine)
    make_compra(engine, cliente)
    accepted = [
        client.post(f"/api/clientes/{cliente.id}/exportar", params={"formato": formato})
        for formato in ("csv", "excel", "txt")
    ]
    accepted.append(client.post("/api/reporte-fidelizacion/generar", json={"formato": "csv"}))
    assert [response.status_code for response in accepted] == [202] * 4
    assert broker.llen("exports") >= 3 and broker.llen("reports") >= 1
    broker.flushall()
    assert broker.llen("exports") == broker.llen("reports") == 0, "every message is gone"

    fault_workers.start()
    for response in accepted:
        done = settle(client, response.json()["id"], within=90)
        assert done["status"] == "succeeded", done


def test_a_message_delivered_three_times_runs_once(
    client: httpx.Client,
    engine: Engine,
    fault_workers: Workers,
    redis_url: str,
    files: storage.Storage,
    broker: redis.Redis,
) -> None:
    cliente = make_cliente(engine)
    make_compra(engine, cliente)
    job_id = client.post(f"/api/clientes/{cliente.id}/exportar").json()["id"]  # message 1
    # Messages 2 and 3: the very task message, sent at once, while the first is being taken.
    for _ in range(2):
        job_queue.publish(job_id, JobType.EXPORT_CLIENTE, redis_url=redis_url)

    done = settle(client, job_id)
    assert done["status"] == "succeeded", done
    # Every message taken and acknowledged (after its task returned, so after its log line).
    wait_until(
        lambda: task_messages(broker, job_id, JobType.EXPORT_CLIENTE) == (set(), set()),
        30,
        "messages consumed",
    )
    log = fault_workers.exports.log()
    # At least the two sent here; the scheduler's sweep may add one if the workers were slow to
    # start and the job looked lost.
    assert log.count(f"job {job_id}: nothing to claim") >= 2
    assert log.count(f"job {job_id} claimed") == 1
    assert log.count(f"job {job_id} succeeded") == 1
    assert job_column(engine, job_id, "attempts") == 1
    only_file_of(files, job_column(engine, job_id, "storage_key"))


def test_a_job_accepted_while_redis_is_unreachable_is_published_later(
    engine: Engine, fault_workers: Workers, service_env: dict[str, str]
) -> None:
    """An API process that cannot reach Redis still accepts the job (it is safe in PostgreSQL);
    the scheduler publishes it, and `?wait=` falls back to polling meanwhile."""
    cliente = make_cliente(engine)
    make_compra(engine, cliente)
    unreachable = f"redis://127.0.0.1:{servers.free_port()}/0"  # nothing listens there
    port = servers.free_port()
    api = servers.api_server({**service_env, "REDIS_URL": unreachable}, port)
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
            timeout=40,
        ) as cut_off:
            started = time.monotonic()
            created = cut_off.post(f"/api/clientes/{cliente.id}/exportar")
            assert created.status_code == 202, created.text
            assert time.monotonic() - started < 8, "a broker outage must not hold the answer"
            assert "not published" in api.log()
            done = cut_off.get(f"/api/jobs/{created.json()['id']}", params={"wait": 30}).json()
    finally:
        api.stop()
    assert done["status"] == "succeeded", done
    assert "job events unavailable" in api.log()


def test_sigterm_mid_report_hands_the_job_back_at_once_and_the_worker_exits(
    client: httpx.Client,
    engine: Engine,
    fault_workers: Workers,
    files: storage.Storage,
    broker: redis.Redis,
) -> None:
    """SIGTERM to the worker's main process (what `docker stop` sends) while a report's query
    waits inside PostgreSQL: the query is cancelled, the job goes back to `queued` with its
    message published again, and the worker exits, all within seconds rather than after the
    job (or the stop grace period). The next worker runs it to one result, on attempt 2."""
    reports = fault_workers.reports
    assert reports.popen is not None
    with report_stuck_mid_run(client, engine) as (job_id, leal):
        _, running = task_messages(broker, job_id)
        assert len(running) == 1, "the message under way, delivered and not yet acknowledged"
        stopped_at = time.monotonic()
        # The parent only, as docker stop does: the pool's children die at once on SIGTERM.
        os.kill(reports.pid, signal.SIGTERM)
        assert reports.popen.wait(timeout=10) == 0, "the worker does not wait for the job"
        assert time.monotonic() - stopped_at < 10
        assert job_column(engine, job_id, "status") == "queued", "handed back, not left running"
        assert not query_waiting_on_compras(engine), "its query was cancelled in the server"
        queued, unacknowledged = task_messages(broker, job_id)
        # Its message, published again (the scheduler's sweeps may add a duplicate: one claim wins).
        assert queued and not unacknowledged, "a message waits for the next worker"
    assert f"job {job_id}: handed back to the queue" in reports.log()

    fault_workers.start()  # the block is gone: the next report worker claims it at once
    done = settle(client, job_id, within=30)
    assert done["status"] == "succeeded", done
    assert job_column(engine, job_id, "attempts") == 2
    wait_until(lambda: task_messages(broker, job_id) == (set(), set()), 30, "messages consumed")
    log = reports.log()
    assert log.count(f"job {job_id} claimed") == 2
    assert log.count(f"job {job_id} succeeded") == 1
    only_file_of(files, job_column(engine, job_id, "storage_key"))
    assert leal.numero_documento in client.get(done["result"]["download_url"]).text


def task_messages(
    broker: redis.Redis, job_id: str, job_type: JobType = JobType.REPORTE_FIDELIZACION
) -> tuple[set[str], set[str]]:
    """The Celery task ids of a job's messages in Redis: waiting in its type's queue, and
    delivered but not yet acknowledged (kombu keeps those in the `unacked` hash until the ack)."""
    queued = [json.loads(raw) for raw in broker.lrange(job_queue.QUEUES[job_type], 0, -1)]
    delivered = [json.loads(raw)[0] for raw in broker.hvals("unacked")]

    def of_job(messages: list[dict[str, Any]]) -> set[str]:
        return {m["headers"]["id"] for m in messages if job_id in m["headers"]["argsrepr"]}

    return of_job(queued), of_job(delivered)

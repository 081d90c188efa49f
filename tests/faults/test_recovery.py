"""Prompt recovery (issue 12): a job accepted while Redis is really down runs within a sweep of
Redis coming back, not after JOB_REPUBLISH_AFTER_SECONDS; and the sweeps keep running under a
real backlog of exports that holds every export process.

The module has its own stack: it stops Redis and locks the purchases table, which the run's
processes and the other tests must not see. JOB_REPUBLISH_AFTER_SECONDS is the production
default here, so that the old ten-minute path cannot be what rescues a job.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, text

from harness import servers
from shared import job_queue, jobs, storage
from shared.jobs import JobType
from tests.factories import make_cliente, make_compra
from tests.jobs import compras_locked, job_column, settle
from tests.stacks import Stack, own_stack

SCHEDULER_INTERVAL_SECONDS = 5
# SPEC §12's target for a job accepted during an outage, counted from Redis answering again.
PUBLISHED_AFTER_RESTART_SECONDS = 60
# Each process of the Procfile's exports worker holds one export; QUEUED more wait in the queue.
EXPORT_PROCESSES = int(servers.option_value(servers.procfile()["worker-exports"], "--concurrency"))
QUEUED = 4
BACKLOG = EXPORT_PROCESSES + QUEUED
EXPORTS_QUEUE = job_queue.QUEUES[JobType.EXPORT_CLIENTE]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("recovery")


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], scratch: Path) -> Iterator[Stack]:
    with own_stack(
        service_env,
        scratch,
        "recovery",
        JOB_REPUBLISH_AFTER_SECONDS="600",
        SCHEDULER_INTERVAL_SECONDS=str(SCHEDULER_INTERVAL_SECONDS),
    ) as stack:
        yield stack


def test_a_job_accepted_while_redis_is_down_runs_within_a_sweep_of_redis_returning(
    stack: Stack,
) -> None:
    cliente = make_cliente(stack.engine)
    make_compra(stack.engine, cliente)
    with stack.api.client() as http:
        stack.redis.stop()
        try:
            created = http.post(f"/api/clientes/{cliente.id}/exportar")
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            assert job_column(stack.engine, job_id, "publish_pending") is True
            time.sleep(SCHEDULER_INTERVAL_SECONDS)  # sweeps cannot even be sent meanwhile
            assert job_column(stack.engine, job_id, "status") == "queued"
        finally:
            stack.redis.start()  # same port, empty: the job has no message anywhere
        servers.wait_for_redis(stack.redis_port)
        back = time.monotonic()
        done = settle(http, job_id, within=PUBLISHED_AFTER_RESTART_SECONDS + 10)
        elapsed = time.monotonic() - back
    assert done["status"] == "succeeded", done
    assert elapsed <= PUBLISHED_AFTER_RESTART_SECONDS, f"succeeded {elapsed:.0f} s after Redis"
    assert job_column(stack.engine, job_id, "publish_pending") is False
    assert job_column(stack.engine, job_id, "attempts") == 1


def test_sweeps_run_while_a_backlog_of_exports_holds_every_export_process(
    stack: Stack, scratch: Path
) -> None:
    files = storage.LocalStorage(scratch / "exports")
    queue = redis.Redis(port=stack.redis_port)
    cliente = make_cliente(stack.engine)
    make_compra(stack.engine, cliente)
    with stack.api.client() as http:
        finished = settle(http, http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"])
        assert finished["status"] == "succeeded", finished
        key = job_column(stack.engine, finished["id"], "storage_key")
        assert files.exists(key)
        with stack.engine.begin() as connection:  # its result is past its time
            connection.execute(
                text("UPDATE jobs SET expires_at = now() - interval '1 s' WHERE id = :id"),
                {"id": finished["id"]},
            )
        dead = a_job_whose_worker_died(stack.engine)

        with compras_locked(stack.engine):
            backlog = [
                http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"]
                for _ in range(BACKLOG)
            ]
            servers.wait_until(lambda: queue.llen(EXPORTS_QUEUE) == QUEUED, 30, "a backlog")
            started = time.monotonic()
            servers.wait_until(
                lambda: (
                    job_column(stack.engine, finished["id"], "status") == "expired"
                    and job_column(stack.engine, dead, "status") == "failed"
                ),
                4 * SCHEDULER_INTERVAL_SECONDS,
                "the sweeps, under the backlog",
            )
            swept_in = time.monotonic() - started
            assert queue.llen(EXPORTS_QUEUE) == QUEUED, "the backlog lasted throughout"
        assert not files.exists(key), "the expired result's file is gone"
        assert job_column(stack.engine, dead, "error")["code"] == "worker_lost"
        for job_id in backlog:
            assert settle(http, job_id)["status"] == "succeeded"
    assert swept_in < 4 * SCHEDULER_INTERVAL_SECONDS


def a_job_whose_worker_died(engine: Engine) -> str:
    """A running export, its every attempt used, silent for an hour: the recovery sweep fails it."""
    with engine.begin() as connection:
        key_id = connection.execute(text("SELECT id FROM api_keys LIMIT 1")).scalar_one()
        job_id: uuid.UUID = (
            connection.execute(
                jobs.create(
                    job_type=JobType.EXPORT_CLIENTE,
                    params={"cliente_id": 1, "formato": "csv"},
                    api_key_id=key_id,
                    idempotency_key=None,
                    request_id=None,
                    created_at=datetime.now(UTC),
                )
            )
            .one()
            .id
        )
        connection.execute(
            text(
                "UPDATE jobs SET status = 'running', attempts = :attempts,"
                " updated_at = now() - interval '1 hour' WHERE id = :id"
            ),
            {"attempts": jobs.MAX_ATTEMPTS, "id": job_id},
        )
    return str(job_id)

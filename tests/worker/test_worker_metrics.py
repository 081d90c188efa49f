"""Job metrics as Prometheus reads them: the run's real workers serve /metrics on their
`--metrics-port`, the API counts the jobs it creates, and queue depths come from Redis."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid

import httpx
import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from harness import servers
from harness.servers import wait_until
from services.export_worker import celery_app
from services.export_worker.metrics import QueueDepthCollector
from shared.jobs import JobType
from tests.conftest import Api, Workers
from tests.factories import make_cliente, make_compra
from tests.jobs import compras_locked, settle, wait_until_no_job_in_flight, wait_until_running

EXPORT = JobType.EXPORT_CLIENTE.value
REPORT = JobType.REPORTE_FIDELIZACION.value
OUTCOMES = ("succeeded", "failed", "canceled")

pytestmark = pytest.mark.usefixtures("http", "quiet")


@pytest.fixture
def quiet(engine: Engine, workers: Workers) -> None:
    """The counts read here are the run's workers' whole-process counts: each test starts once
    no other test's job is still queued or running, so that only its own jobs move them."""
    workers.start()
    wait_until_no_job_in_flight(engine)


class Metrics:
    """A /metrics page, parsed: each sample's value by its name and exact labels."""

    def __init__(self, page: str) -> None:
        self.values = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(page)
            for sample in family.samples
        }

    @classmethod
    def scrape(cls, url: str) -> Metrics:
        # A worker that an earlier test restarted may still be starting.
        wait_until(lambda: httpx.get(url).status_code == 200, 30, f"{url} answering")
        return cls(httpx.get(url).text)

    def get(self, name: str, **labels: str) -> float | None:
        return self.values.get((name, frozenset(labels.items())))

    def __call__(self, name: str, **labels: str) -> float:
        value = self.get(name, **labels)
        assert value is not None, f"no sample {name}{labels}"
        return value


def job_counts(url: str, job_type: str) -> dict[str, float]:
    """A worker's counts for one job type: jobs ended by outcome, and its histograms' counts."""
    metrics = Metrics.scrape(url)
    counts = {
        status: metrics("clientes_jobs_finished_total", type=job_type, status=status)
        for status in OUTCOMES
    }
    counts["runs"] = metrics("clientes_job_run_seconds_count", type=job_type)
    counts["waits"] = metrics("clientes_job_wait_seconds_count", type=job_type)
    return counts


def new_report(client: httpx.Client) -> str:
    response = client.post("/api/reporte-fidelizacion/generar", json={"formato": "csv"})
    job_id: str = response.json()["id"]
    return job_id


def assert_counted(url: str, job_type: str, before: dict[str, float], **grown: float) -> None:
    """Since `before`, the counts grew by exactly `grown` (any count not named: not at all)."""
    expected = {key: grown.get(key, 0) for key in before}

    def growth() -> dict[str, float]:
        now = job_counts(url, job_type)
        return {key: now[key] - before[key] for key in before}

    # The API may see a job's row ended a moment before its pool process has counted it.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: growth() == expected, 10, "the counts")
    assert growth() == expected


def test_succeeded_jobs_are_counted_by_type_with_their_durations(
    client: httpx.Client, api: Api, engine: Engine, workers: Workers
) -> None:
    cliente = make_cliente(engine)
    make_compra(engine, cliente, monto="9000000.00")
    exports_before = job_counts(workers.exports_metrics, EXPORT)
    reports_before = job_counts(workers.reports_metrics, REPORT)
    created_before = Metrics.scrape(f"{api.url}/metrics")

    replayed = {"Idempotency-Key": f"metrics-{uuid.uuid4()}"}
    export_id = client.post(f"/api/clientes/{cliente.id}/exportar", headers=replayed).json()["id"]
    replay = client.post(f"/api/clientes/{cliente.id}/exportar", headers=replayed).json()["id"]
    assert replay == export_id, "a replay is the same job"
    report_id = new_report(client)
    assert settle(client, export_id)["status"] == "succeeded"
    assert settle(client, report_id)["status"] == "succeeded"

    # Each on its own worker's page; one run and one wait observed per job.
    assert_counted(workers.exports_metrics, EXPORT, exports_before, succeeded=1, runs=1, waits=1)
    assert_counted(workers.reports_metrics, REPORT, reports_before, succeeded=1, runs=1, waits=1)
    assert Metrics.scrape(workers.exports_metrics)("clientes_job_run_seconds_sum", type=EXPORT) > 0
    assert Metrics.scrape(workers.reports_metrics)("clientes_job_run_seconds_sum", type=REPORT) > 0

    created = Metrics.scrape(f"{api.url}/metrics")
    for job_type in (EXPORT, REPORT):
        name = "clientes_jobs_created_total"
        assert created(name, type=job_type) - created_before(name, type=job_type) == 1, job_type


def test_a_job_that_fails_counts_as_failed_and_its_wait_as_queue_time(
    client: httpx.Client, engine: Engine, workers: Workers
) -> None:
    cliente = make_cliente(engine)
    before = job_counts(workers.exports_metrics, EXPORT)
    waited_before = Metrics.scrape(workers.exports_metrics)(
        "clientes_job_wait_seconds_sum", type=EXPORT
    )

    # The worker frozen, the job waits in its queue while its customer is deleted: accepted by
    # the API, it fails in the worker.
    workers.exports.signal(signal.SIGSTOP)
    try:
        job_id = client.post(f"/api/clientes/{cliente.id}/exportar").json()["id"]
        accepted = time.monotonic()
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM clientes WHERE id = :id"), {"id": cliente.id})
        time.sleep(1)
    finally:
        workers.exports.signal(signal.SIGCONT)
    frozen_for = time.monotonic() - accepted

    done = settle(client, job_id)
    assert done["status"] == "failed" and done["error"]["code"] == "cliente_not_found", done
    assert_counted(workers.exports_metrics, EXPORT, before, failed=1, runs=1, waits=1)
    waited = Metrics.scrape(workers.exports_metrics)("clientes_job_wait_seconds_sum", type=EXPORT)
    assert waited - waited_before >= frozen_for - 0.1, "the wait is the time spent queued"


def test_a_job_canceled_while_it_runs_counts_as_canceled(
    client: httpx.Client, engine: Engine, workers: Workers
) -> None:
    cliente = make_cliente(engine)
    before = job_counts(workers.exports_metrics, EXPORT)
    with compras_locked(engine):  # the export waits on its purchases: running, not done
        job_id = client.post(f"/api/clientes/{cliente.id}/exportar").json()["id"]
        wait_until_running(client, job_id)
        assert client.delete(f"/api/jobs/{job_id}").status_code == 204
        time.sleep(1.5)  # past the worker's next heartbeat, which finds the job canceled
    assert_counted(workers.exports_metrics, EXPORT, before, canceled=1, runs=1, waits=1)


@pytest.mark.usefixtures("fault_workers")
def test_queue_depth_counts_waiting_reports_until_a_worker_drains_them(
    client: httpx.Client, workers: Workers
) -> None:
    def depth(queue: str) -> float:
        return Metrics.scrape(workers.exports_metrics)("clientes_queue_depth", queue=queue)

    workers.scheduler.stop()  # it would publish again the jobs left queued for 3 s
    workers.reports.stop()
    before = depth("reports")  # a message the stopped worker had reserved went back

    job_ids = [new_report(client) for _ in range(3)]
    assert depth("reports") == before + 3
    assert depth("exports") == 0
    assert depth("sweeps") >= 0, "the sweeps' queue is reported too"

    workers.start()
    wait_until(lambda: depth("reports") == 0, 60, "the reports queue drained")
    for job_id in job_ids:
        assert settle(client, job_id)["status"] == "succeeded"


def test_queue_depth_adds_up_kombu_priority_lists_and_is_left_out_without_redis(
    redis_url: str,
) -> None:
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    with celery_app.app.connection_for_write(redis_url) as connection:
        for priority in (0, 9, 9):  # kombu keeps each priority step in a Redis list of its own
            celery_app.app.send_task(
                "jobs.nothing", queue=queue, priority=priority, connection=connection
            )
    assert redis.Redis.from_url(redis_url).llen(queue) == 1, "the name alone misses two"

    def scraped(url: str) -> Metrics:
        registry = CollectorRegistry()
        registry.register(QueueDepthCollector(url, [queue]))
        return Metrics(generate_latest(registry).decode())

    assert scraped(redis_url)("clientes_queue_depth", queue=queue) == 3
    nobody = f"redis://127.0.0.1:{servers.free_port()}/0"
    assert scraped(nobody).get("clientes_queue_depth", queue=queue) is None

"""Prometheus metrics of the workers: jobs ended by type and outcome, how long they ran and
waited, webhook deliveries by outcome and their latency, and how many messages wait in each
queue.

Tasks run in the prefork pool's processes, which record into prometheus_client's multiprocess
files (PROMETHEUS_MULTIPROC_DIR; celery_app.py makes a private one when the environment names
none). The worker's main process serves their sum, and the queue depths read from Redis at
scrape time, on `celery … worker --metrics-port N` (0 or absent: no server).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any
from wsgiref.simple_server import WSGIServer

import redis
from celery import bootsteps, signals
from kombu.transport.redis import PRIORITY_STEPS, Channel
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client import start_http_server as start_metrics_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from services.export_worker.celery_app import settings
from shared import job_queue
from shared.jobs import JobType, Status

log = logging.getLogger(__name__)

# From a 10 ms export to a report at its 10 min mark (longer ones land in +Inf).
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# The outcomes a worker gives a job it claimed (a job canceled while queued never reaches one).
OUTCOMES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

JOBS_FINISHED = Counter(
    "clientes_jobs_finished_total",
    "Jobs a worker ended, by type and outcome (canceled: stopped while running).",
    ["type", "status"],
)
JOB_RUN_SECONDS = Histogram(
    "clientes_job_run_seconds",
    "Time from a job's claim to its outcome.",
    ["type"],
    buckets=DURATION_BUCKETS,
)
JOB_WAIT_SECONDS = Histogram(
    "clientes_job_wait_seconds",
    "Time from a job's creation to its first claim: the queue's latency.",
    ["type"],
    buckets=DURATION_BUCKETS,
)
for _type in JobType:  # every series exists from the start, at zero
    JOB_RUN_SECONDS.labels(_type)
    JOB_WAIT_SECONDS.labels(_type)
    for _status in OUTCOMES:
        JOBS_FINISHED.labels(_type, _status)


WEBHOOK_OUTCOMES = ("delivered", "retried", "gave_up")
# From a local receiver's milliseconds to a day of retries.
WEBHOOK_LATENCY_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    3600,
    86400,
)
WEBHOOK_DELIVERIES = Counter(
    "clientes_webhook_deliveries_total",
    "Webhook delivery attempts, by outcome (retried: failed, tried again later; gave_up: failed, "
    "the retry schedule ran out).",
    ["outcome"],
)
WEBHOOK_LATENCY_SECONDS = Histogram(
    "clientes_webhook_delivery_latency_seconds",
    "Time from an event's recording (the job's final transition) to its receiver's 2xx.",
    buckets=WEBHOOK_LATENCY_BUCKETS,
)
for _outcome in WEBHOOK_OUTCOMES:
    WEBHOOK_DELIVERIES.labels(_outcome)


def webhook_attempted(outcome: str, latency: timedelta | None) -> None:
    WEBHOOK_DELIVERIES.labels(outcome).inc()
    if latency is not None:
        WEBHOOK_LATENCY_SECONDS.observe(max(latency.total_seconds(), 0.0))


def job_claimed(job_type: JobType, waited: timedelta) -> None:
    # Never below zero: created_at comes from the API's clock, the claim time from PostgreSQL's.
    JOB_WAIT_SECONDS.labels(job_type).observe(max(waited.total_seconds(), 0.0))


def job_finished(job_type: JobType, status: Status, run_seconds: float) -> None:
    JOBS_FINISHED.labels(job_type, status).inc()
    JOB_RUN_SECONDS.labels(job_type).observe(run_seconds)


class QueueDepthCollector:
    """`clientes_queue_depth{queue}`: messages waiting in each queue, read at scrape time.

    Kombu keeps a Redis queue as one list per priority step: the queue's name for priority 0,
    and `<queue>\\x06\\x16<step>` for the others; the depth is the sum of their lengths.
    """

    def __init__(self, redis_url: str, queues: Iterable[str]) -> None:
        self._queues = list(queues)
        # Short timeouts: an unreachable Redis must not hold the scrape.
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)

    @staticmethod
    def keys(queue: str) -> list[str]:
        return [f"{queue}{Channel.sep}{step}" if step else queue for step in PRIORITY_STEPS]

    def collect(self) -> Iterator[Metric]:
        try:
            with self._redis.pipeline(transaction=False) as pipeline:
                for queue in self._queues:
                    for key in self.keys(queue):
                        pipeline.llen(key)
                lengths: list[int] = pipeline.execute()
        except (redis.RedisError, OSError) as error:
            # No depth rather than a failed scrape: the pool's metrics still come through.
            log.warning("queue depth not read: %s", type(error).__name__)
            return
        depth = GaugeMetricFamily(
            "clientes_queue_depth", "Messages waiting in a job queue.", labels=["queue"]
        )
        steps = len(PRIORITY_STEPS)
        for index, queue in enumerate(self._queues):
            depth.add_metric([queue], sum(lengths[index * steps : (index + 1) * steps]))
        yield depth


class MetricsServer(bootsteps.StartStopStep):  # type: ignore[misc]
    """The worker's main process serving its pool's metrics and the queue depths over HTTP.

    Added to the worker's bootsteps by celery_app.py; it receives `--metrics-port` from there.
    """

    label = "Metrics"
    # Started once the pool runs, stopped before it stops.
    requires = ("celery.worker.components:Pool",)

    def __init__(self, worker: Any, metrics_port: int = 0, **options: Any) -> None:
        super().__init__(worker, **options)
        self.port = metrics_port
        self.enabled = metrics_port > 0
        self.server: WSGIServer | None = None

    def start(self, worker: Any) -> None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(QueueDepthCollector(settings.redis_url, job_queue.ALL_QUEUES))
        self.server, _ = start_metrics_server(self.port, registry=registry)
        # A pool process forked later (one replacing a dead one) inherits the listening socket:
        # it must close its copy, or it would keep the port bound should the main process die.
        signals.worker_process_init.connect(self._close_inherited_socket, weak=False)
        log.info("metrics on :%d/metrics", self.port)

    def stop(self, worker: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def _close_inherited_socket(self, **_: object) -> None:
        if self.server is not None:
            self.server.socket.close()


def _mark_process_dead(pid: int, **_: object) -> None:
    # Sent in the pool process as it exits (not when it is killed): its live-gauge files go, so
    # that no gauge ever counts a process that is gone (counters and histograms stay summed).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


signals.worker_process_shutdown.connect(_mark_process_dead)

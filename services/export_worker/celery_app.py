"""The Celery application of the export workers and of the scheduler, and job publishing.

    celery -A services.export_worker.celery_app worker --queues exports   # quick exports
    celery -A services.export_worker.celery_app worker --queues reports   # heavy reports
    celery -A services.export_worker.celery_app beat                      # sweeps (scheduler.py)

Delivery is at least once: a message is acknowledged only after its task ran (acks_late) and
handed back when the process running it dies (reject_on_worker_lost), each process reserving one
message at a time. PostgreSQL holds the job's state and a task starts by claiming its job with a
guarded UPDATE (shared.jobs), so a duplicate delivery does nothing and results are never read
back from Celery.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import click
from celery import Celery, signals

from services.export_worker import broker
from shared import db, logs
from shared.jobs import JobType
from shared.settings import get_settings

settings = get_settings()

# Separate queues, separate workers: a quick export never waits behind a long report.
QUEUES = {JobType.EXPORT_CLIENTE: "exports", JobType.REPORTE_FIDELIZACION: "reports"}
TASK_NAMES = {
    JobType.EXPORT_CLIENTE: "jobs.export_cliente",
    JobType.REPORTE_FIDELIZACION: "jobs.reporte_fidelizacion",
}
# Longer than any task's hard time limit (tasks.py): an unacknowledged message is delivered again
# after this long, and a task still running must not be handed to a second worker meanwhile.
VISIBILITY_TIMEOUT_SECONDS = 2 * 3600
TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    # A publish to an unreachable Redis fails in seconds (the API must answer) instead of hanging.
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}

app = Celery(
    "clientes",
    broker=settings.redis_url,
    include=["services.export_worker.tasks", "services.export_worker.scheduler"],
)
app.conf.update(
    task_default_queue=QUEUES[JobType.EXPORT_CLIENTE],
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_transport_options=TRANSPORT_OPTIONS,
    result_backend_transport_options=TRANSPORT_OPTIONS,
    broker_connection_retry_on_startup=True,
    # Reconnect to Redis for as long as it takes (Celery's default gives up after 100 tries,
    # some 45 minutes, and the worker exits): an outage must end with the workers still there.
    broker_connection_max_retries=None,
    # Redis's transport, fixed so that a worker survives losing Redis mid-job (broker.py).
    broker_transport=broker.TRANSPORT,
    # On a lost broker connection a running task carries on: its job's row, not the message,
    # decides what counts, and the redelivered message will find nothing to claim.
    worker_cancel_long_running_tasks_on_connection_loss=False,
)


def publish(job_id: uuid.UUID | str, job_type: JobType) -> None:
    """Send a job's task to its queue. Raises when Redis stays unreachable after brief retries;
    the job is still safe: the scheduler publishes queued jobs nobody claimed again."""
    app.send_task(
        TASK_NAMES[job_type],
        args=[str(job_id)],
        queue=QUEUES[job_type],
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
    )


def task(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """`app.task` with a type mypy can check the decorated functions against."""
    decorator: Callable[[Callable[..., Any]], Any] = app.task(**options)
    return decorator


def _json_logs(**_: object) -> None:
    logs.configure(settings.log_level)


def _fresh_pool_after_fork(**_: object) -> None:
    # Connections inherited from the parent are shared with it: drop them without closing them.
    db.sync_engine().dispose(close=False)


signals.setup_logging.connect(_json_logs)
signals.worker_process_init.connect(_fresh_pool_after_fork)


def _metrics_directory(_: click.Context, __: click.Parameter, port: int) -> int:
    """With metrics served and no PROMETHEUS_MULTIPROC_DIR given, a private one for the pool
    processes' metrics, removed when the worker exits. Made while the worker's options are
    parsed: the variable counts only if set before prometheus_client is imported, and the worker
    imports the task modules (and so metrics.py) before any of its signals or bootsteps run."""
    if port and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        directory = tempfile.mkdtemp(prefix="clientes-worker-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        atexit.register(_remove_directory, directory, os.getpid())
    return port


def _remove_directory(directory: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:  # the worker's main process, never a pool process
        shutil.rmtree(directory, ignore_errors=True)


# `celery … worker --metrics-port N`: the worker serves /metrics on port N (metrics.py).
app.user_options["worker"].add(
    click.Option(
        ["--metrics-port"],
        type=click.IntRange(0, 65535),
        default=0,
        callback=_metrics_directory,
        help="Serve Prometheus /metrics on this port (0: not at all).",
    )
)
app.steps["worker"].add("services.export_worker.metrics:MetricsServer")

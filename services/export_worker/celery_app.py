"""The Celery application of the export workers and of the scheduler: worker configuration only.

    celery -A services.export_worker.celery_app worker --queues exports,sweeps   # quick exports
    celery -A services.export_worker.celery_app worker --queues reports,sweeps   # heavy reports
    celery -A services.export_worker.celery_app worker --queues webhooks         # webhooks
    celery -A services.export_worker.celery_app beat                      # sweeps (scheduler.py)

Delivery is at least once: a message is acknowledged only after its task ran (acks_late) and
handed back when the process running it dies (reject_on_worker_lost), each process reserving one
message at a time. PostgreSQL holds the job's state and a task starts by claiming its job with a
guarded UPDATE (shared.jobs), so a duplicate delivery does nothing and results are never read
back from Celery. Queue names, task names and the transport are the queue's contract
(shared.job_queue), which the API publishes by.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import click
from celery import Celery, signals

from services.export_worker import broker
from shared import db, job_queue, logs
from shared.jobs import JobType
from shared.settings import get_settings

settings = get_settings()

# The scheduler's sweeps (scheduler.py), sent by beat every SCHEDULER_INTERVAL_SECONDS.
RECOVER_TASK = "jobs.recover"
EXPIRE_TASK = "jobs.expire"
ORPHANS_TASK = "jobs.sweep_orphans"


# A sweep message waits at most this long for a free worker process, then is dropped (a later
# one supersedes it), so that sweeps do not pile up while no worker consumes. Longer than an
# export's time limit: with every process busy, a sweep still gets the next free one (kombu
# takes from a worker's queues in turn).
SWEEP_EXPIRES_SECONDS = 10 * 60


def beat_schedule(
    interval_seconds: float, orphan_grace_seconds: float
) -> dict[str, dict[str, Any]]:
    options = {
        "queue": job_queue.SWEEPS_QUEUE,
        "expires": max(interval_seconds, SWEEP_EXPIRES_SECONDS),
    }
    # The orphan sweep lists every stored file: twice per grace period is often enough.
    schedules = {
        "recover-jobs": (RECOVER_TASK, interval_seconds),
        "expire-results": (EXPIRE_TASK, interval_seconds),
        "sweep-orphans": (ORPHANS_TASK, max(interval_seconds, orphan_grace_seconds / 2)),
    }
    sweeps = {
        name: {"task": task_name, "schedule": every, "options": options}
        for name, (task_name, every) in schedules.items()
    }
    # The webhook sweep runs on the webhooks worker, so that it works even while the job
    # workers are busy or down; dropped when not run within an interval (the next supersedes it).
    webhook_options = {"queue": job_queue.WEBHOOKS_QUEUE, "expires": interval_seconds}
    return {
        **sweeps,
        "send-webhooks": {
            "task": job_queue.WEBHOOK_SWEEP_TASK,
            "schedule": interval_seconds,
            "options": webhook_options,
        },
    }


app = Celery(
    "clientes",
    broker=settings.redis_url,
    include=[
        "services.export_worker.tasks",
        "services.export_worker.scheduler",
        "services.export_worker.webhooks",
    ],
)
app.conf.update(
    job_queue.MESSAGE_SETTINGS,
    task_default_queue=job_queue.QUEUES[JobType.EXPORT_CLIENTE],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    # Reconnect to Redis for as long as it takes (Celery's default gives up after 100 tries,
    # some 45 minutes, and the worker exits): an outage must end with the workers still there.
    broker_connection_max_retries=None,
    # Redis's transport, fixed so that a worker survives losing Redis mid-job (broker.py).
    broker_transport=broker.TRANSPORT,
    # On a lost broker connection a running task carries on: its job's row, not the message,
    # decides what counts, and the redelivered message will find nothing to claim.
    worker_cancel_long_running_tasks_on_connection_loss=False,
    beat_schedule=beat_schedule(settings.scheduler_interval_seconds, settings.orphan_grace_seconds),
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
    db.sync_read_engine().dispose(close=False)


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

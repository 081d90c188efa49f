"""The job queue's contract: the queue and task name of each job type, the Redis transport
options, and `publish`, which the API and the scheduler use to send a job's message; and the
same for webhook deliveries (`publish_webhook_events`), on a queue of their own.

Publishing needs only a Celery client: this module's app sends messages and never runs a task,
so a process that publishes loads no worker code. The workers
(services/export_worker/celery_app.py) consume with the same names, options and serializer.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from celery import Celery

from shared.jobs import JobType
from shared.settings import get_settings

log = logging.getLogger(__name__)

# Separate queues, separate workers: a quick export never waits behind a long report, and
# neither waits behind a bulk export of every customer.
QUEUES = {
    JobType.EXPORT_CLIENTE: "exports",
    JobType.REPORTE_FIDELIZACION: "reports",
    JobType.EXPORTACION_MASIVA: "bulk",
}
# The scheduler's sweeps have a queue of their own, consumed by both workers: a backlog of
# exports (or a long report) never holds back the sweeps that recover jobs and delete files.
SWEEPS_QUEUE = "sweeps"
TASK_NAMES = {
    JobType.EXPORT_CLIENTE: "jobs.export_cliente",
    JobType.REPORTE_FIDELIZACION: "jobs.reporte_fidelizacion",
    JobType.EXPORTACION_MASIVA: "jobs.exportacion_masiva",
}
# Webhook deliveries have their own queue and worker: a receiver that hangs for its whole
# timeout never delays an export or a report.
WEBHOOKS_QUEUE = "webhooks"
WEBHOOK_DELIVER_TASK = "webhooks.deliver"
WEBHOOK_SWEEP_TASK = "webhooks.sweep"
ALL_QUEUES = (*QUEUES.values(), SWEEPS_QUEUE, WEBHOOKS_QUEUE)
# Longer than any task's hard time limit (export_worker/tasks.py): an unacknowledged message is
# delivered again after this long, and a task still running must not go to a second worker.
VISIBILITY_TIMEOUT_SECONDS = 2 * 3600
TRANSPORT_OPTIONS: dict[str, Any] = {
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    # A publish to an unreachable Redis fails in seconds (the API must answer) instead of hanging.
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
# What publishers and workers must agree on; Celery's configuration keys.
MESSAGE_SETTINGS: dict[str, Any] = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "broker_transport_options": TRANSPORT_OPTIONS,
    "result_backend_transport_options": TRANSPORT_OPTIONS,
}


@functools.cache
def _publisher(redis_url: str) -> Celery:
    app = Celery("clientes-publisher", broker=redis_url, set_as_current=False)
    app.conf.update(MESSAGE_SETTINGS)
    return app


def publish(job_id: uuid.UUID | str, job_type: JobType, *, redis_url: str | None = None) -> None:
    """Send a job's message to its queue. Raises when Redis stays unreachable after brief
    retries; the job is still safe: the scheduler publishes queued jobs nobody claimed again."""
    _publisher(redis_url or get_settings().redis_url).send_task(
        TASK_NAMES[job_type],
        args=[str(job_id)],
        queue=QUEUES[job_type],
        retry=True,
        retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
    )


def publish_webhook_events(
    event_ids: Iterable[uuid.UUID | str], *, countdown: float | None = None
) -> int:
    """Send each event's delivery message (after the commit that recorded it). Never raises: an
    event whose message did not go is sent by the scheduler's sweep. Returns how many went."""
    sent = 0
    for event_id in event_ids:
        try:
            _publisher(get_settings().redis_url).send_task(
                WEBHOOK_DELIVER_TASK,
                args=[str(event_id)],
                queue=WEBHOOKS_QUEUE,
                countdown=countdown,
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
            )
            sent += 1
        except Exception as error:  # Redis unreachable: the sweep sends these later
            log.warning("could not publish webhook events: %s", type(error).__name__)
            break  # the rest would wait out the same timeouts
    return sent

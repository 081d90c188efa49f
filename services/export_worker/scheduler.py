"""The scheduler's sweeps, run every SCHEDULER_INTERVAL_SECONDS.

`celery -A services.export_worker.celery_app beat` only sends the sweep messages (the schedule is
celery_app.py's configuration); a worker of the `exports` queue runs them. Together they keep
the promise that an accepted job is never lost:

- recover: a running job whose heartbeat is older than JOB_STALE_AFTER_SECONDS lost its worker,
  so it goes back to the queue (or fails once it used every attempt); a queued job untouched for
  JOB_REPUBLISH_AFTER_SECONDS lost its message (Redis restarted empty, or the API could not
  publish), so it is published again. A duplicate message is harmless: only one claim wins.
- expire: a succeeded job past its `expires_at` loses its file and becomes `expired`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from services.export_worker.celery_app import EXPIRE_TASK, RECOVER_TASK, settings, task
from shared import db, job_queue, jobs, storage, webhooks
from shared.job_events import announce
from shared.jobs import JobType

log = logging.getLogger(__name__)

SWEEP_TIME_LIMIT_SECONDS = 60


@task(name=RECOVER_TASK, soft_time_limit=SWEEP_TIME_LIMIT_SECONDS)
def recover_jobs() -> dict[str, int]:
    stale_after = timedelta(seconds=settings.job_stale_after_seconds)
    republish_after = timedelta(seconds=settings.job_republish_after_seconds)
    with db.sync_engine().begin() as connection:
        exhausted = connection.execute(jobs.fail_stale_exhausted(stale_after)).all()
        requeued = connection.execute(jobs.requeue_stale_running(stale_after)).all()
        lost = connection.execute(jobs.touch_lost_queued(republish_after)).all()
    for row in exhausted:
        announce(row.id, jobs.Status.FAILED)
    job_queue.publish_webhook_events(webhooks.event_ids(exhausted))
    for row in requeued:
        announce(row.id, jobs.Status.QUEUED)
    published = 0
    for row in [*requeued, *lost]:
        try:
            job_queue.publish(row.id, JobType(row.type))
            published += 1
        except Exception as error:  # Redis down: the next sweep after the threshold tries again
            log.warning("could not publish job %s: %s", row.id, type(error).__name__)
    counts = {"failed": len(exhausted), "requeued": len(requeued), "republished": len(lost)}
    if any(counts.values()):
        log.info("recovered jobs", extra={**counts, "published": published})
    return counts


@task(name=EXPIRE_TASK, soft_time_limit=SWEEP_TIME_LIMIT_SECONDS)
def expire_results() -> int:
    files = storage.get_storage()
    # The files go inside the transaction: if the storage fails, the jobs stay succeeded and
    # the next sweep tries again (deleting an already deleted file is fine).
    with db.sync_engine().begin() as connection:
        expired = connection.execute(jobs.expire_due()).all()
        for row in expired:
            if row.storage_key:
                files.delete(row.storage_key)
    for row in expired:
        announce(row.id, jobs.Status.EXPIRED)
    job_queue.publish_webhook_events(webhooks.event_ids(expired))
    if expired:
        log.info("expired job results", extra={"expired": len(expired)})
    return len(expired)

"""The scheduler's sweeps, run every SCHEDULER_INTERVAL_SECONDS.

`celery -A services.export_worker.celery_app beat` only sends the sweep messages (the schedule is
celery_app.py's configuration) to the `sweeps` queue, which both workers consume, so that no
backlog of jobs holds them back. Together they keep the promise that an accepted job is never
lost:

- recover: a running job whose heartbeat is older than JOB_STALE_AFTER_SECONDS lost its worker,
  so it goes back to the queue (or fails once it used every attempt); a queued job untouched for
  JOB_REPUBLISH_AFTER_SECONDS lost its message (Redis restarted empty after taking it), so it
  is published again; a queued job marked `publish_pending` (the API, or an earlier sweep, could
  not reach Redis) is published at the first sweep that can. A duplicate message is harmless:
  only one claim wins.
- expire: a succeeded job past its `expires_at` loses its file and becomes `expired`.
- sweep orphans: a stored file that no succeeded job offers (written by an attempt that lost its
  job, or that crashed before recording it) is deleted once ORPHAN_GRACE_SECONDS old.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row

from services.export_worker.celery_app import (
    EXPIRE_TASK,
    ORPHANS_TASK,
    RECOVER_TASK,
    settings,
    task,
)
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
        pending = connection.execute(jobs.take_publish_pending()).all()
        lost = connection.execute(jobs.touch_lost_queued(republish_after)).all()
    for row in exhausted:
        announce(row.id, jobs.Status.FAILED)
    job_queue.publish_webhook_events(webhooks.event_ids(exhausted))
    for row in requeued:
        announce(row.id, jobs.Status.QUEUED)
    unpublished = _publish([*requeued, *pending, *lost])
    counts = {
        "failed": len(exhausted),
        "requeued": len(requeued),
        "published_pending": len(pending),
        "republished": len(lost),
    }
    if any(counts.values()):
        log.info("recovered jobs", extra={**counts, "unpublished": len(unpublished)})
    return counts


def _publish(rows: Sequence[Row[Any]]) -> list[uuid.UUID]:
    """Publish each job's message; those Redis refused are marked pending, so the next sweep,
    one interval later, tries again. Returns their ids."""
    unpublished = []
    for row in rows:
        try:
            job_queue.publish(row.id, JobType(row.type))
        except Exception as error:
            log.warning("could not publish job %s: %s", row.id, type(error).__name__)
            unpublished.append(row.id)
    if unpublished:
        with db.sync_engine().begin() as connection:
            connection.execute(jobs.mark_publish_pending(unpublished))
    return unpublished


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


@task(name=ORPHANS_TASK, soft_time_limit=SWEEP_TIME_LIMIT_SECONDS)
def sweep_orphans() -> int:
    files = storage.get_storage()
    old_enough = datetime.now(UTC) - timedelta(seconds=settings.orphan_grace_seconds)
    candidates = [
        stored.key
        for stored in files.list_files(jobs.STORAGE_PREFIX)
        if stored.modified_at < old_enough
    ]
    deleted = 0
    for start in range(0, len(candidates), jobs.SWEEP_BATCH):
        batch = candidates[start : start + jobs.SWEEP_BATCH]
        owners = [jobs.job_of_storage_key(key) for key in batch]
        job_ids = [job_id for job_id in owners if job_id is not None]
        with db.sync_engine().connect() as connection:
            offered = {row.storage_key for row in connection.execute(jobs.select_results(job_ids))}
        for key in batch:
            if key not in offered:
                files.delete(key)
                deleted += 1
    if deleted:
        log.info("deleted orphan files", extra={"deleted": deleted})
    return deleted

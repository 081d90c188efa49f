"""The job state machine: statuses, allowed transitions, and the statements that move a job.

PostgreSQL, not Redis, is the truth about a job. Every transition is one guarded UPDATE whose
WHERE names the statuses it may leave (derived from `SOURCES`) and, for a worker, the attempt it
owns; so a transition is atomic, two processes racing for the same job cannot both win, and a
statement that matches no row means "this job is no longer yours". Both services execute these
statements: the API on its async engine, the workers and the scheduler on the sync one.

    queued → running → succeeded → expired     (the normal life; expiry by age or on delete)
    running → queued                            (transient error, or its worker died: retry)
    running → failed                            (permanent error, or attempts used up)
    queued | running → canceled                 (the owner deleted it)

Every final transition (succeeded, failed, canceled, expired) also records the job's webhook
events in the same statement (`_final`): the outbox of shared.webhooks.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Insert,
    Interval,
    Select,
    Update,
    bindparam,
    delete,
    func,
    null,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import InstrumentedAttribute

from shared import webhooks
from shared.db import Bound
from shared.models import Job, JobInput
from shared.webhooks import EventType


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


class JobType(StrEnum):
    EXPORT_CLIENTE = "export_cliente"
    REPORTE_FIDELIZACION = "reporte_fidelizacion"
    EXPORTACION_MASIVA = "exportacion_masiva"


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELED, Status.EXPIRED})

# Each status, and the statuses a job may reach it from. Nothing ever leaves failed, canceled
# or expired; succeeded only expires (by age, or when its owner deletes the result).
SOURCES: Mapping[Status, frozenset[Status]] = {
    Status.RUNNING: frozenset({Status.QUEUED}),  # a worker claims it
    Status.QUEUED: frozenset({Status.RUNNING}),  # transient error, or its worker died
    Status.SUCCEEDED: frozenset({Status.RUNNING}),
    Status.FAILED: frozenset({Status.RUNNING}),
    Status.CANCELED: frozenset({Status.QUEUED, Status.RUNNING}),
    Status.EXPIRED: frozenset({Status.SUCCEEDED}),
}

# Claims per job, whatever ended them (transient errors or dead workers), before it fails:
# a job that keeps killing its worker must not loop for ever.
MAX_ATTEMPTS = 5
SWEEP_BATCH = 100


def can_transition(source: Status, target: Status) -> bool:
    return source in SOURCES.get(target, frozenset())


@dataclass(frozen=True, slots=True)
class JobError:
    """What a failed job tells its owner: a stable machine code and a sentence for people."""

    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


STORAGE_PREFIX = "jobs/"


def storage_key(job_id: uuid.UUID | str, attempt: int, filename: str) -> str:
    # One per attempt: an attempt that lost its job and carries on cannot overwrite the file
    # of the attempt that won; the winner's key is the one its `succeed` records.
    return f"{STORAGE_PREFIX}{job_id}/{attempt}/{filename}"


def job_of_storage_key(key: str) -> uuid.UUID | None:
    """The job a stored file belongs to, or None for a key no job could have made."""
    folder = key.removeprefix(STORAGE_PREFIX).split("/", 1)[0]
    try:
        return uuid.UUID(folder)
    except ValueError:
        return None


# What the API shows of a job (SPEC §4), and what a worker needs to run one.
PUBLIC_COLUMNS = (
    Job.id,
    Job.type,
    Job.status,
    Job.params,
    Job.progress,
    Job.rows_written,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.expires_at,
    Job.error,
    Job.result,
)
CLAIMED_COLUMNS = (
    Job.id,
    Job.type,
    Job.params,
    Job.attempts,
    Job.request_id,
    Job.created_at,  # with started_at (the claim's time): how long the job waited
    Job.started_at,
)


def _transition(target: Status, *where: ColumnElement[bool]) -> Update:
    """The one way to change a job's status: guarded by the statuses `target` may come from."""
    return (
        update(Job)
        .where(Job.status.in_(SOURCES[target]), *where)
        .values(status=target, updated_at=func.now())
    )


def _final(
    transition: Update, event: EventType, *returning: InstrumentedAttribute[Any]
) -> Select[Any]:
    """A transition to a final status that, in the same statement, records `event` for every
    webhook endpoint of the job's key (the outbox: an event exists iff the transition committed).

        WITH moved AS (UPDATE jobs … RETURNING …),
             recorded AS (INSERT INTO webhook_events SELECT … FROM moved JOIN endpoints …)
        SELECT <returning>, <the events recorded for the job> FROM moved

    Rows as the bare UPDATE … RETURNING <returning> would give, plus `webhook_events`: the ids
    of the events to publish once committed."""
    columns = {column.key: column for column in (*returning, *PUBLIC_COLUMNS, Job.api_key_id)}
    moved = transition.returning(*columns.values()).cte("moved")
    recorded = webhooks.record_events(moved, event)
    # A bulk export's id and document lists (personal data) are needed by no final job: they go
    # with the transition, not with the job's row (kept for its history until cleared).
    inputs_dropped = delete(JobInput).where(JobInput.job_id.in_(select(moved.c.id))).cte("dropped")
    events_of_job = (
        select(func.array_agg(recorded.c.id))
        .where(recorded.c.job_id == moved.c.id)
        .scalar_subquery()
    )
    return select(
        *(moved.c[column.key] for column in returning), events_of_job.label("webhook_events")
    ).add_cte(inputs_dropped)


def _owned_by(attempt: int | BindParameter[int]) -> ColumnElement[bool]:
    # A worker's writes count only while the job is still on the attempt it claimed.
    return Job.attempts == attempt


# Creation (API).


def create(
    *,
    job_type: JobType,
    params: Mapping[str, Any],
    api_key_id: uuid.UUID,
    idempotency_key: str | None,
    request_id: str | None,
    created_at: datetime,
) -> Insert:
    """Insert a queued job; with an idempotency key, insert nothing when the key is taken."""
    statement = pg_insert(Job).values(
        id=uuid.uuid4(),
        type=job_type,
        status=Status.QUEUED,
        params=dict(params),
        api_key_id=api_key_id,
        idempotency_key=idempotency_key,
        request_id=request_id,
        created_at=created_at,
        updated_at=created_at,
    )
    if idempotency_key is not None:
        statement = statement.on_conflict_do_nothing(
            index_elements=[Job.api_key_id, Job.idempotency_key]
        )
    return statement.returning(*PUBLIC_COLUMNS)


def select_status(job_id: uuid.UUID) -> Select[Any]:
    return select(Job.status).where(Job.id == job_id)


def select_request_id(job_id: uuid.UUID) -> Select[Any]:
    return select(Job.request_id).where(Job.id == job_id)


# A worker's transitions: claim, heartbeat, then exactly one of succeed / fail / release.
# The claim and the success, which every job runs, are built once with bind parameters
# (db.Bound): building the success (an UPDATE in a CTE with the outbox's INSERT) alone took a
# worker 1.9 ms of CPU a job.


def _parameter(name: str, column: InstrumentedAttribute[Any]) -> BindParameter[Any]:
    return bindparam(name, type_=column.type)


@functools.cache
def _claim() -> Update:
    return (
        _transition(Status.RUNNING, Job.id == _parameter("claimed_job_id", Job.id))
        .values(
            attempts=Job.attempts + 1,
            started_at=func.now(),
            progress=0,
            rows_written=None,
            error=null(),  # SQL NULL: None would be stored as the JSON value null
            publish_pending=False,  # a message reached a worker after all
        )
        .returning(*CLAIMED_COLUMNS)
    )


def claim(job_id: uuid.UUID) -> Bound:
    """queued → running, one more attempt. A duplicate delivery finds nothing to claim."""
    return Bound(_claim(), {"claimed_job_id": job_id})


def heartbeat(
    job_id: uuid.UUID, attempt: int, progress: int | None = None, rows_written: int | None = None
) -> Update:
    """Still alive (and how far). No row back: the job was canceled or taken over — stop."""
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status == Status.RUNNING, _owned_by(attempt))
        .values(updated_at=func.now())
        .returning(Job.id)
    )
    if progress is not None:
        statement = statement.values(progress=progress)
    if rows_written is not None:
        statement = statement.values(rows_written=rows_written)
    return statement


@functools.cache
def _succeed() -> Select[Any]:
    succeeded = _transition(
        Status.SUCCEEDED,
        Job.id == _parameter("succeeded_job_id", Job.id),
        _owned_by(_parameter("succeeded_attempt", Job.attempts)),
    ).values(
        rows_written=_parameter("succeeded_rows_written", Job.rows_written),
        progress=100,
        finished_at=func.now(),
        expires_at=func.now() + bindparam("succeeded_result_ttl", type_=Interval()),
        result=_parameter("succeeded_result", Job.result),
        storage_key=_parameter("succeeded_storage_key", Job.storage_key),
        error=null(),
    )
    return _final(succeeded, EventType.JOB_SUCCEEDED, Job.id)


def succeed(
    job_id: uuid.UUID,
    attempt: int,
    *,
    result: Mapping[str, Any],
    storage_key: str,
    result_ttl: timedelta,
    rows_written: int | None = None,
) -> Bound:
    return Bound(
        _succeed(),
        {
            "succeeded_job_id": job_id,
            "succeeded_attempt": attempt,
            "succeeded_rows_written": rows_written,
            "succeeded_result_ttl": result_ttl,
            "succeeded_result": dict(result),
            "succeeded_storage_key": storage_key,
        },
    )


def fail(job_id: uuid.UUID, attempt: int, error: JobError) -> Select[Any]:
    failed = _transition(Status.FAILED, Job.id == job_id, _owned_by(attempt)).values(
        finished_at=func.now(), error=error.as_json()
    )
    return _final(failed, EventType.JOB_FAILED, Job.id)


def release(job_id: uuid.UUID, attempt: int) -> Update:
    """running → queued after a transient error, for the retry to claim again."""
    return (
        _transition(Status.QUEUED, Job.id == job_id, _owned_by(attempt))
        .values(progress=None, rows_written=None)
        .returning(Job.id)
    )


# The owner's transitions (API).


def cancel(job_id: uuid.UUID, api_key_id: uuid.UUID) -> Select[Any]:
    """queued/running → canceled. A running worker notices at its next heartbeat."""
    canceled = _transition(Status.CANCELED, Job.id == job_id, Job.api_key_id == api_key_id).values(
        finished_at=func.now()
    )
    return _final(canceled, EventType.JOB_CANCELED, Job.id)


def discard_result(job_id: uuid.UUID, api_key_id: uuid.UUID) -> Select[Any]:
    """succeeded → expired at the owner's request; the caller deletes the returned file."""
    discarded = _transition(Status.EXPIRED, Job.id == job_id, Job.api_key_id == api_key_id).values(
        expires_at=func.least(Job.expires_at, func.now())
    )
    return _final(discarded, EventType.JOB_EXPIRED, Job.id, Job.storage_key)


# The scheduler's sweeps. Each locks its batch with SKIP LOCKED, so concurrent sweepers split
# the work instead of repeating it, and bumps updated_at, so a swept job is not swept again
# before the threshold passes once more.


def _stale(status: Status, older_than: timedelta, *where: ColumnElement[bool]) -> Select[Any]:
    return (
        select(Job.id)
        .where(Job.status == status, Job.updated_at < func.now() - older_than, *where)
        .order_by(Job.updated_at)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )


def mark_publish_pending(job_ids: Sequence[uuid.UUID]) -> Update:
    """These queued jobs have no message: the API (or a sweep) could not publish it."""
    return (
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == Status.QUEUED)
        .values(publish_pending=True)
    )


def take_publish_pending() -> Update:
    """Queued jobs whose publish failed, taken for publishing: the flag is cleared now, and the
    caller marks again those it still cannot publish."""
    pending = (
        select(Job.id)
        .where(Job.publish_pending, Job.status == Status.QUEUED)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    return (
        update(Job)
        .where(Job.id.in_(pending))
        .values(publish_pending=False, updated_at=func.now())
        .returning(Job.id, Job.type)
    )


def touch_lost_queued(older_than: timedelta) -> Update:
    """Queued jobs nobody claimed for `older_than`: their message was lost (e.g. Redis restarted
    empty, or the API could not publish). The caller publishes the returned jobs again."""
    return (
        update(Job)
        .where(Job.id.in_(_stale(Status.QUEUED, older_than)))
        .values(updated_at=func.now())
        .returning(Job.id, Job.type)
    )


def requeue_stale_running(stale_after: timedelta) -> Update:
    """Running jobs without a heartbeat for `stale_after`: their worker died. Back to queued
    (the caller publishes them again) while attempts remain."""
    stale = _stale(Status.RUNNING, stale_after, Job.attempts < MAX_ATTEMPTS)
    return (
        _transition(Status.QUEUED, Job.id.in_(stale))
        .values(progress=None, rows_written=None)
        .returning(Job.id, Job.type)
    )


def fail_stale_exhausted(stale_after: timedelta) -> Select[Any]:
    """Stale running jobs that have used every attempt: fail them rather than loop for ever."""
    stale = _stale(Status.RUNNING, stale_after, Job.attempts >= MAX_ATTEMPTS)
    error = JobError(
        "worker_lost",
        f"The job was interrupted {MAX_ATTEMPTS} times (its worker stopped); giving up.",
    )
    failed = _transition(Status.FAILED, Job.id.in_(stale)).values(
        finished_at=func.now(), error=error.as_json()
    )
    return _final(failed, EventType.JOB_FAILED, Job.id)


def select_results(job_ids: Sequence[uuid.UUID]) -> Select[uuid.UUID, str | None]:
    """The file each of these jobs offers now (succeeded jobs only): the rest are orphans."""
    return select(Job.id, Job.storage_key).where(
        Job.id.in_(job_ids), Job.status == Status.SUCCEEDED
    )


def expire_due() -> Select[Any]:
    """succeeded → expired once past expires_at. The caller deletes the returned files in the
    same transaction, so a storage outage leaves the job to the next sweep."""
    due = (
        select(Job.id)
        .where(Job.status == Status.SUCCEEDED, Job.expires_at < func.now())
        .order_by(Job.expires_at)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    expired = _transition(Status.EXPIRED, Job.id.in_(due))
    return _final(expired, EventType.JOB_EXPIRED, Job.id, Job.storage_key)

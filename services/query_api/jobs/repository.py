"""Statements only the API runs on jobs: reading an owner's jobs and idempotency keys.

The transitions (create, cancel, discard) are the state machine's, in shared.jobs, like every
statement that moves a job.
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Select,
    TextClause,
    Update,
    bindparam,
    func,
    literal,
    select,
    text,
    tuple_,
    update,
)

from shared.db import Bound
from shared.jobs import PUBLIC_COLUMNS, JobType, Status
from shared.models import ApiKey, Job

# A bulk export's lists (psycopg's SQL: the driver's own connection runs it), in PostgreSQL's
# binary format: no array text for the server to parse (100,000 documents: 0.15 s, against
# 0.25–0.45 s through SQLAlchemy's text parameters, in the API).
INSERT_LISTS = (
    "INSERT INTO job_inputs (job_id, ids, codigos, numeros) VALUES (%s, %b::bigint[], %b, %b)"
)


def forget_idempotency_key(api_key_id: uuid.UUID, key: str, *, older_than: timedelta) -> Update:
    """An idempotency key is remembered for a while only; past that the same key starts anew."""
    return (
        update(Job)
        .where(
            Job.api_key_id == api_key_id,
            Job.idempotency_key == key,
            Job.created_at < func.now() - older_than,
        )
        .values(idempotency_key=None)
    )


def lock_owner_jobs(api_key_id: uuid.UUID) -> TextClause:
    """Until the transaction ends, one creation at a time per key: the count of its active jobs
    and the insert that follows it cannot interleave with another request's (two keys hashing
    alike merely take turns)."""
    return text("SELECT pg_advisory_xact_lock(hashtextextended('jobs:' || :key, 0))").bindparams(
        key=str(api_key_id)
    )


def count_active(api_key_id: uuid.UUID) -> Select[Any]:
    """The key's jobs still queued or running."""
    return select(func.count()).where(
        Job.api_key_id == api_key_id, Job.status.in_([Status.QUEUED, Status.RUNNING])
    )


def select_by_idempotency_key(api_key_id: uuid.UUID, key: str) -> Select[Any]:
    return select(*PUBLIC_COLUMNS).where(Job.api_key_id == api_key_id, Job.idempotency_key == key)


def select_owned(job_id: uuid.UUID, api_key_id: uuid.UUID) -> Bound:
    """A job, if it is this key's: read three times by a one-call export (db.Bound)."""
    return Bound(_select_owned(), {"job_id": job_id, "api_key_id": api_key_id})


@functools.cache
def _select_owned() -> Select[Any]:
    return select(*PUBLIC_COLUMNS, Job.storage_key).where(
        Job.id == bindparam("job_id", type_=Job.id.type),
        Job.api_key_id == bindparam("api_key_id", type_=Job.api_key_id.type),
    )


def select_linked(job_id: uuid.UUID) -> Select[Any]:
    """A job reached by a signed link: any owner's, while that owner's key is not revoked."""
    return (
        select(*PUBLIC_COLUMNS, Job.storage_key)
        .join(ApiKey, ApiKey.id == Job.api_key_id)
        .where(Job.id == job_id, ApiKey.revoked_at.is_(None))
    )


def select_page(
    api_key_id: uuid.UUID,
    *,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
    status: Status | None = None,
    job_type: JobType | None = None,
) -> Select[Any]:
    """One page of an owner's jobs, newest first, resuming after (created_at, id) (keyset)."""
    query = (
        select(*PUBLIC_COLUMNS)
        .where(Job.api_key_id == api_key_id)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
    )
    if after is not None:
        created_at, job_id = after
        query = query.where(
            tuple_(Job.created_at, Job.id)
            < tuple_(literal(created_at, Job.created_at.type), literal(job_id, Job.id.type))
        )
    if status is not None:
        query = query.where(Job.status == status)
    if job_type is not None:
        query = query.where(Job.type == job_type)
    return query

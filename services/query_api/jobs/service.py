"""Jobs: idempotent creation (the row committed before its message is published), reading,
waiting, listing, and the owner's delete. Services raise `Problem`s; they never build responses.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from redis.asyncio import Redis
from sqlalchemy import Row, exists, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.query_api import cursors, metrics
from services.query_api.auth import Principal
from services.query_api.jobs import events, repository
from services.query_api.problems import NotFound, Problem
from shared import job_events, job_queue, jobs, storage, webhooks
from shared.job_params import (
    BulkExportParams,
    BulkLists,
    ExportParams,
    InvalidParams,
    ReportParams,
)
from shared.jobs import JobType, Status
from shared.models import Cliente, TipoDocumento

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
PUBLISH_TIMEOUT_SECONDS = 5.0
# How soon a key at its cap of active jobs should try again.
ACTIVE_CAP_RETRY_AFTER_SECONDS = 10
# How soon a client should look again: exports take a moment, reports longer.
RETRY_AFTER_SECONDS = {
    JobType.EXPORT_CLIENTE: 1,
    JobType.REPORTE_FIDELIZACION: 5,
    JobType.EXPORTACION_MASIVA: 2,
}

JobParams = ExportParams | ReportParams | BulkExportParams
# Parses the request's parameters as of a moment: defaults such as "the last 30 days" depend on
# it, so a replayed Idempotency-Key is checked against the moment the job was first made.
ParseParams = Callable[[datetime], JobParams]


async def create_job(
    db: AsyncEngine,
    *,
    owner: Principal,
    job_type: JobType,
    parse: ParseParams,
    idempotency_key: str | None,
    request_id: str | None,
    max_active: int,
) -> Row[Any]:
    """A new queued job (or, for a known Idempotency-Key, the job it made), then its message.
    A key with `max_active` jobs queued or running gets 429 and no job."""
    now = datetime.now(UTC)
    params = parse(now)

    # One transaction: the per-key lock of the active-jobs cap lasts until the insert commits.
    async with db.begin() as connection:
        if idempotency_key is not None:
            await connection.execute(
                repository.forget_idempotency_key(
                    owner.key_id, idempotency_key, older_than=IDEMPOTENCY_WINDOW
                )
            )
            earlier = await _by_idempotency_key(connection, owner, idempotency_key)
            if earlier is not None:
                return _same_request_or_422(earlier, job_type, parse)
        await _within_active_cap(connection, owner, max_active)
        created = await _insert(
            connection, owner, job_type, params, idempotency_key, request_id, now
        )
        if created is None:  # a concurrent request with the same Idempotency-Key committed first
            assert idempotency_key is not None  # without a key there is no conflict to skip
            earlier = await _by_idempotency_key(connection, owner, idempotency_key)
            assert earlier is not None
            return _same_request_or_422(earlier, job_type, parse)
    metrics.JOBS_CREATED.labels(job_type).inc()
    log.info("job %s created", created.id, extra={"job_id": str(created.id), "type": job_type})
    await _publish(db, created.id, job_type)
    return created


async def _within_active_cap(connection: AsyncConnection, owner: Principal, limit: int) -> None:
    """429 (no job made) when the key already has `limit` jobs queued or running. Holds the
    key's creation lock until the caller's transaction ends, so concurrent requests cannot all
    see room for one more."""
    await connection.execute(repository.lock_owner_jobs(owner.key_id))
    active = await connection.scalar(repository.count_active(owner.key_id))
    if active is not None and active >= limit:
        raise Problem(
            429,
            f"This API key has {active} jobs queued or running, its limit: wait for one to end "
            "(or cancel one) before starting another.",
            kind="too-many-active-jobs",
            headers={"Retry-After": str(ACTIVE_CAP_RETRY_AFTER_SECONDS)},
            limit=limit,
        )


async def _insert(
    connection: AsyncConnection,
    owner: Principal,
    job_type: JobType,
    params: JobParams,
    idempotency_key: str | None,
    request_id: str | None,
    created_at: datetime,
) -> Row[Any] | None:
    """The queued job's row; None when its Idempotency-Key was taken meanwhile."""
    if isinstance(params, ExportParams) and not await _cliente_exists(
        connection, params.cliente_id
    ):
        raise NotFound(f"No customer with id {params.cliente_id}.")
    statement = jobs.create(
        job_type=job_type,
        params=params.as_json(),
        api_key_id=owner.key_id,
        idempotency_key=idempotency_key,
        request_id=request_id,
        created_at=created_at,
    )
    created: Row[Any] | None = (await connection.execute(statement)).first()
    if created is not None and isinstance(params, BulkExportParams) and params.lists:
        await _insert_lists(connection, created.id, params.lists)
    return created


async def _insert_lists(connection: AsyncConnection, job_id: uuid.UUID, lists: BulkLists) -> None:
    """A bulk export's lists, in the job's transaction: one row, each list one array parameter
    (never a bind parameter per entry)."""
    raw = await connection.get_raw_connection()
    driver: psycopg.AsyncConnection[Any] = raw.driver_connection  # type: ignore[assignment]
    await driver.execute(repository.INSERT_LISTS, [job_id, lists.ids, lists.codigos, lists.numeros])


async def document_codes(db: AsyncEngine) -> frozenset[str]:
    """Every document type code, for a bulk export's documents to be checked against."""
    async with db.connect() as connection:
        return frozenset((await connection.scalars(select(TipoDocumento.codigo))).all())


async def _by_idempotency_key(
    connection: AsyncConnection, owner: Principal, key: str
) -> Row[Any] | None:
    row: Row[Any] | None = (
        await connection.execute(repository.select_by_idempotency_key(owner.key_id, key))
    ).first()
    return row


def _same_request_or_422(earlier: Row[Any], job_type: JobType, parse: ParseParams) -> Row[Any]:
    try:
        same = earlier.type == job_type and parse(earlier.created_at).as_json() == earlier.params
    except InvalidParams:
        same = False
    if not same:
        raise Problem(
            422,
            "This Idempotency-Key was already used in the last 24 h for a request with other "
            "parameters; use a new key for a new request.",
            kind="idempotency-key-reused",
        )
    return earlier


async def _cliente_exists(connection: AsyncConnection, cliente_id: int) -> bool:
    return bool(await connection.scalar(select(exists().where(Cliente.id == cliente_id))))


async def _publish(db: AsyncEngine, job_id: uuid.UUID, job_type: JobType) -> None:
    # After the commit, so a worker never looks for a row that is not there yet. A failure does
    # not fail the request: the job is safe in PostgreSQL, marked for the scheduler to publish
    # within one interval of Redis answering again.
    try:
        await asyncio.wait_for(
            asyncio.to_thread(job_queue.publish, job_id, job_type), PUBLISH_TIMEOUT_SECONDS
        )
    except Exception as error:
        log.warning(
            "job %s accepted but not published (%s): the scheduler will publish it",
            job_id,
            type(error).__name__,
        )
        try:
            async with db.begin() as connection:
                await connection.execute(jobs.mark_publish_pending([job_id]))
        except Exception as mark_error:  # the JOB_REPUBLISH_AFTER_SECONDS sweep is left
            log.warning("job %s not marked for publishing: %s", job_id, type(mark_error).__name__)


async def get_owned(db: AsyncEngine, owner: Principal, job_id: uuid.UUID) -> Row[Any]:
    """The job, if it is the caller's: another key's job is as unknown as a missing one."""
    async with db.connect() as connection:
        row: Row[Any] | None = (
            await connection.execute(*repository.select_owned(job_id, owner.key_id))
        ).first()
    if row is None:
        raise NotFound(f"No job {job_id} for this API key.")
    return row


async def wait_for(
    db: AsyncEngine,
    redis: Redis,
    long_polls: events.LongPolls,
    owner: Principal,
    job_id: uuid.UUID,
    seconds: float,
) -> Row[Any]:
    """The job once terminal, or as it is after `seconds`; at once when the key (or the
    process) already has as many waits under way as it may."""

    async def read() -> Row[Any]:
        return await get_owned(db, owner, job_id)

    if seconds <= 0:
        return await read()
    with long_polls.slot(owner.key_id) as may_wait:
        if not may_wait:
            return await read()
        return await events.wait_until(
            redis,
            job_events.channel(job_id),
            read,
            lambda row: row.status in jobs.TERMINAL,
            seconds,
            worth_reading=job_events.is_final,
        )


def retry_after(row: Row[Any]) -> dict[str, str]:
    """`Retry-After` for a job still under way; nothing for a finished one."""
    if row.status in jobs.TERMINAL:
        return {}
    return {"Retry-After": str(RETRY_AFTER_SECONDS[JobType(row.type)])}


def _cursor_purpose(owner: Principal) -> str:
    return f"jobs:{owner.key_id}"  # one key's cursor means nothing to another


async def list_page(
    db: AsyncEngine,
    owner: Principal,
    *,
    limit: int,
    cursor: str | None,
    status: Status | None,
    job_type: JobType | None,
    secret: str,
) -> tuple[list[Row[Any]], str | None]:
    """One page of the owner's jobs, newest first, and the cursor of the next page."""
    purpose = _cursor_purpose(owner)
    after = cursors.resume_after(cursor, cursors.decode_moment_uuid, purpose=purpose, secret=secret)
    query = repository.select_page(
        owner.key_id, limit=limit + 1, after=after, status=status, job_type=job_type
    )
    async with db.connect() as connection:
        rows = list((await connection.execute(query)).all())
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    next_cursor = cursors.encode_moment_id(
        (last.created_at, last.id), purpose=purpose, secret=secret
    )
    return rows[:limit], next_cursor


async def delete(
    db: AsyncEngine, files: storage.Storage, owner: Principal, job_id: uuid.UUID
) -> None:
    """Cancel a queued or running job; discard a succeeded job's file (the job then shows
    `expired`); a job already failed, canceled or expired stays as it is."""
    async with db.begin() as connection:
        if canceled := (await connection.execute(jobs.cancel(job_id, owner.key_id))).first():
            changed, moved = Status.CANCELED, canceled
        elif discarded := (
            await connection.execute(jobs.discard_result(job_id, owner.key_id))
        ).first():
            # Inside the transaction: if the storage fails the job stays succeeded (503).
            if discarded.storage_key:
                await asyncio.to_thread(files.delete, discarded.storage_key)
            changed, moved = Status.EXPIRED, discarded
        elif (await connection.execute(*repository.select_owned(job_id, owner.key_id))).first():
            return
        else:
            raise NotFound(f"No job {job_id} for this API key.")
    await asyncio.to_thread(job_events.announce, job_id, changed)
    # The webhook events the same statement recorded, sent once committed.
    if events := webhooks.event_ids([moved]):
        await asyncio.to_thread(job_queue.publish_webhook_events, events)


async def downloadable(db: AsyncEngine, owner: Principal | None, job_id: uuid.UUID) -> Row[Any]:
    """The job if its file can be downloaded now; else 409 (not ready, failed) or 410 (gone).
    `owner` None: the job of a verified signed link."""
    row = await get_owned(db, owner, job_id) if owner else await _linked(db, job_id)
    if row.status == Status.SUCCEEDED:
        return row
    if row.status == Status.EXPIRED:
        raise gone()
    detail = f"The job is {row.status}: it has no file"
    if row.status in jobs.TERMINAL:
        raise Problem(409, f"{detail}.", kind="job-not-downloadable")
    raise Problem(409, f"{detail} yet.", kind="job-not-ready", headers=retry_after(row))


async def _linked(db: AsyncEngine, job_id: uuid.UUID) -> Row[Any]:
    async with db.connect() as connection:
        row: Row[Any] | None = (await connection.execute(repository.select_linked(job_id))).first()
    if row is None:
        raise NotFound(f"No job {job_id}.")
    return row


def gone() -> Problem:
    return Problem(410, "The result expired and its file was deleted.", kind="job-expired")

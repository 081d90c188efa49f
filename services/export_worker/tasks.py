"""The job tasks: claim the job, render its file while heartbeating, store it, record the outcome.

Every step is guarded, because a message may arrive twice and a worker may die at any point:
the claim (queued → running) lets one delivery through; the heartbeat and the final UPDATE
count only while the job is still on this attempt, so a canceled or taken-over attempt stops
and discards its work. Each committed transition but the claim is announced on Redis
(`job:{id}`), which is what lets `GET /api/jobs/{id}?wait=N` answer the moment a job ends.
"""

from __future__ import annotations

import contextvars
import errno
import hashlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

import psycopg
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services.export_worker import bulk, exports, metrics, shutdown
from services.export_worker.celery_app import settings, task
from services.export_worker.renderers.excel import TooManyRows
from shared import db, job_queue, jobs, storage, webhooks
from shared.job_events import announce
from shared.job_params import BulkExportParams, ExportParams, InvalidParams, ReportParams
from shared.jobs import JobError, JobType
from shared.logs import request_id_var

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
EXPORT_TIME_LIMIT_SECONDS = 5 * 60
REPORT_TIME_LIMIT_SECONDS = 60 * 60
BULK_TIME_LIMIT_SECONDS = 60 * 60
HARD_LIMIT_GRACE_SECONDS = 60
# Celery's own retry budget per message, beyond the job's attempts (jobs.MAX_ATTEMPTS): when it
# runs out the message is dropped, and the job, still queued, is published again by the scheduler.
MAX_MESSAGE_RETRIES = 10
# A full disk empties again (expiry, an operator): not the job's fault, so retried.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# Waits between tries while the storage is out: 1 s, doubling, at most a minute.
STORAGE_RETRY_FIRST_DELAY_SECONDS = 1.0
STORAGE_RETRY_MAX_DELAY_SECONDS = 60.0
# An attempt stops waiting this long before its soft time limit, to hand the job back in time.
TIME_LIMIT_MARGIN_SECONDS = 15.0


class JobLost(Exception):
    """The job was canceled, or handed to another attempt, while this attempt ran."""


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    id: uuid.UUID
    type: JobType
    params: Mapping[str, Any]
    attempt: int
    claimed_at: float  # time.monotonic() at the claim


def is_storage_outage(error: BaseException) -> bool:
    """The storage, or the disk of the temporary file, cannot take the file for now."""
    return isinstance(error, storage.StorageUnavailable) or (
        isinstance(error, OSError) and error.errno in DISK_FULL
    )


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the database or the storage was unreachable, or a disk full, not wrong."""
    if is_storage_outage(error):
        return True
    if isinstance(error, PoolTimeoutError | psycopg.OperationalError):
        return True
    return isinstance(error, DBAPIError) and (
        error.connection_invalidated or isinstance(error.orig, psycopg.OperationalError)
    )


class Heartbeat:
    """Beats the job's `updated_at` (and progress) every second, so the job looks alive even
    while the render waits on a long query; once a beat finds the job no longer this attempt's,
    `check()` makes the attempt stop.

    The beats come from the process's beating thread (`_Beats`), not from a thread of the job's
    own: an export that ends within its first second is never beaten, and starting and joining
    a thread took such a job 3 ms of its ~15 in the worker on two busy cores (`Thread.start`
    waits until the new thread has been scheduled)."""

    def __init__(self, engine: Engine, job: ClaimedJob) -> None:
        self._engine = engine
        self._job = job
        self._progress: int | None = None
        self._rows_written: int | None = None
        self._lost = threading.Event()
        # The beating thread runs each beat in this context, so that its log lines carry the
        # job's request id like the rest of the attempt's.
        self._context = contextvars.copy_context()

    def __enter__(self) -> Heartbeat:
        _beats().add(self)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A beat already under way may end after this; harmless: a beat counts only while the
        # job is running on this attempt (jobs.heartbeat).
        _beats().remove(self)

    def report(self, percent: int) -> None:
        """The renderer's `on_progress`: record how far it got, and stop if the job is lost."""
        self._progress = max(0, min(100, int(percent)))
        self.check()

    def rows_written(self, count: int) -> None:
        """A bulk export's rows so far, sent with the next beat; stop if the job is lost."""
        self._rows_written = count
        self.check()

    def check(self) -> None:
        if self._lost.is_set():
            raise JobLost

    def sleep(self, seconds: float) -> None:
        """Wait, still beating; stop at once if the job is lost meanwhile."""
        if self._lost.wait(seconds):
            raise JobLost

    def beat(self) -> bool:
        """One beat (in the beating thread); False once the job is no longer this attempt's."""
        return self._context.run(self._beat)

    def _beat(self) -> bool:
        try:
            beat = jobs.heartbeat(
                self._job.id, self._job.attempt, self._progress, self._rows_written
            )
            alive = db.execute_alone(self._engine, beat)
        except Exception as error:
            # The render will meet the same outage and decide; keep beating meanwhile.
            log.warning("heartbeat of job %s failed: %s", self._job.id, type(error).__name__)
            return True
        if alive is None:
            self._lost.set()
            return False
        return True


class _Beats:
    """The heartbeats under way in this process, beaten from one thread of its own: each one a
    second after it started, then a second after its previous beat ended. The thread looks at
    least every HEARTBEAT_SECONDS, so that adding a heartbeat never has to wake it."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._due: dict[Heartbeat, float] = {}  # when each is next beaten (time.monotonic())
        threading.Thread(target=self._beat_forever, name="heartbeats", daemon=True).start()

    def add(self, heartbeat: Heartbeat) -> None:
        with self._lock:
            self._due[heartbeat] = time.monotonic() + HEARTBEAT_SECONDS

    def remove(self, heartbeat: Heartbeat) -> None:
        with self._lock:
            self._due.pop(heartbeat, None)

    def _beat_forever(self) -> None:
        while True:
            for heartbeat in self._take_due():
                alive = heartbeat.beat()
                with self._lock:
                    if heartbeat in self._due:  # not ended meanwhile
                        if alive:
                            self._due[heartbeat] = time.monotonic() + HEARTBEAT_SECONDS
                        else:
                            del self._due[heartbeat]
            time.sleep(self._seconds_to_next())

    def _take_due(self) -> list[Heartbeat]:
        now = time.monotonic()
        with self._lock:
            return [heartbeat for heartbeat, due in self._due.items() if due <= now]

    def _seconds_to_next(self) -> float:
        now = time.monotonic()
        with self._lock:
            due = min(self._due.values(), default=now + HEARTBEAT_SECONDS)
        return min(max(due - now, 0.0), HEARTBEAT_SECONDS)


_beats_lock = threading.Lock()
_process_beats: _Beats | None = None


def _beats() -> _Beats:
    """This process's `_Beats`, started with its first job: a pool process forked from a parent
    that had one gets its own (a thread does not survive the fork)."""
    global _process_beats
    with _beats_lock:
        if _process_beats is None or _process_beats.pid != os.getpid():
            _process_beats = _Beats()
        return _process_beats


T = TypeVar("T")

# Renderers by job type: each reads the job's params and writes the file to `out`.
Renderer = Callable[[Connection, ClaimedJob, BinaryIO, Heartbeat], exports.RenderedFile]


def _render_export(
    connection: Connection, job: ClaimedJob, out: BinaryIO, heartbeat: Heartbeat
) -> exports.RenderedFile:
    export = ExportParams.from_json(job.params)
    return exports.render_export_cliente(
        connection,
        cliente_id=export.cliente_id,
        formato=export.formato,
        out=out,
        generated_at=datetime.now(UTC),
        on_progress=heartbeat.report,
    )


def _render_report(
    connection: Connection, job: ClaimedJob, out: BinaryIO, heartbeat: Heartbeat
) -> exports.RenderedFile:
    report = ReportParams.from_json(job.params, ZoneInfo(settings.timezone))
    return exports.render_reporte_fidelizacion(
        connection,
        desde=report.desde,
        hasta=report.hasta,
        monto_minimo=report.monto_minimo,
        formato=report.formato,
        out=out,
        generated_at=datetime.now(UTC),
        on_progress=heartbeat.report,
    )


def _render_bulk(
    connection: Connection, job: ClaimedJob, out: BinaryIO, heartbeat: Heartbeat
) -> exports.RenderedFile:
    timezone = ZoneInfo(settings.timezone)
    return bulk.render_exportacion_masiva(
        connection,
        job_id=job.id,
        params=BulkExportParams.from_json(job.params, timezone),
        out=out,
        generated_at=datetime.now(UTC),
        timezone=timezone,
        on_progress=heartbeat.report,
        on_rows=heartbeat.rows_written,
    )


RENDERERS: Mapping[JobType, Renderer] = {
    JobType.EXPORT_CLIENTE: _render_export,
    JobType.REPORTE_FIDELIZACION: _render_report,
    JobType.EXPORTACION_MASIVA: _render_bulk,
}
# Reports read a window of history, where a replica's lag of a moment does not matter: with
# READ_DATABASE_URL set they read the replica. An export reads the primary: its customer may
# have been created a moment ago; a bulk export's lists were written by the API a moment ago.
READS_FROM_REPLICA = frozenset({JobType.REPORTE_FIDELIZACION})
TIME_LIMITS = {
    JobType.EXPORT_CLIENTE: EXPORT_TIME_LIMIT_SECONDS,
    JobType.REPORTE_FIDELIZACION: REPORT_TIME_LIMIT_SECONDS,
    JobType.EXPORTACION_MASIVA: BULK_TIME_LIMIT_SECONDS,
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _render_and_store(engine: Engine, job: ClaimedJob) -> tuple[str, dict[str, Any]]:
    """Render into a temporary file from one consistent snapshot, then store it under the job's
    key, each step waiting out storage outages. Returns the key and the job's `result`."""
    with (
        Heartbeat(engine, job) as heartbeat,
        tempfile.TemporaryDirectory(prefix="clientes-job-") as directory,
    ):
        path = Path(directory) / "output"
        rendered = _waiting_out_storage_outages(
            job, heartbeat, lambda: _render(engine, job, path, heartbeat)
        )
        heartbeat.check()  # canceled meanwhile: do not store a file nobody will fetch
        key = jobs.storage_key(job.id, job.attempt, rendered.filename)
        result = {
            "filename": rendered.filename,
            "content_type": rendered.content_type,
            "size_bytes": path.stat().st_size,
            "row_count": rendered.row_count,
            "sha256": rendered.sha256 or _sha256(path),
        }
        if rendered.not_found is not None:
            result["not_found"] = rendered.not_found
        _waiting_out_storage_outages(job, heartbeat, lambda: storage.get_storage().save(key, path))
    return key, result


def _render(
    engine: Engine, job: ClaimedJob, path: Path, heartbeat: Heartbeat
) -> exports.RenderedFile:
    source = db.sync_read_engine() if job.type in READS_FROM_REPLICA else engine
    with source.connect() as connection, path.open("wb") as out:
        connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with connection.begin():
            # The file may take longer than the API's statement timeout; the task's own time
            # limit bounds it instead.
            timeout_ms = str(TIME_LIMITS[job.type] * 1000)
            connection.execute(select(func.set_config("statement_timeout", timeout_ms, True)))
            return RENDERERS[job.type](connection, job, out, heartbeat)


def _waiting_out_storage_outages(job: ClaimedJob, heartbeat: Heartbeat, step: Callable[[], T]) -> T:
    """`step`, tried again with a growing wait while the storage is out or a disk is full: for
    STORAGE_RETRY_SECONDS, and never past the attempt's time limit. Then the outage goes up
    (transient: the job's next attempt follows)."""
    deadline = min(
        time.monotonic() + settings.storage_retry_seconds,
        job.claimed_at + TIME_LIMITS[job.type] - TIME_LIMIT_MARGIN_SECONDS,
    )
    delay = STORAGE_RETRY_FIRST_DELAY_SECONDS
    while True:
        try:
            return step()
        except Exception as error:
            if not is_storage_outage(error) or time.monotonic() + delay > deadline:
                raise
            log.warning(
                "job %s: storage unavailable (%s); trying again in %.0f s",
                job.id,
                _reason(error),
                delay,
            )
        heartbeat.sleep(delay)
        delay = min(delay * 2, STORAGE_RETRY_MAX_DELAY_SECONDS)


def _reason(error: BaseException) -> str:
    """What went wrong, without the path (a file name carries a document number)."""
    cause = error.__cause__ if isinstance(error, storage.StorageUnavailable) else error
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return type(cause or error).__name__


def _finish(engine: Engine, job: ClaimedJob, transition: Any, status: jobs.Status) -> bool:
    row = db.execute_alone(engine, transition)
    if row is None:
        return False
    if status in metrics.OUTCOMES:  # counted before anyone waiting hears of it
        _count_outcome(job, status)
    announce(job.id, status)
    if status in jobs.TERMINAL:  # its webhook events, recorded by the same statement
        job_queue.publish_webhook_events(webhooks.event_ids([row]))
    return True


def _count_outcome(job: ClaimedJob, status: jobs.Status) -> None:
    metrics.job_finished(job.type, status, time.monotonic() - job.claimed_at)


def _current_status(engine: Engine, job: ClaimedJob) -> jobs.Status | None:
    row = db.execute_alone(engine, jobs.select_status(job.id))
    return None if row is None else jobs.Status(row.status)


def _count_if_canceled(engine: Engine, job: ClaimedJob) -> None:
    """A stopped attempt ended its job if the owner canceled it; a job taken over is counted
    by the attempt that took it."""
    try:
        status = _current_status(engine, job)
    except Exception as error:  # only a metric is at stake: the attempt is over either way
        log.warning("job %s: outcome not counted (%s)", job.id, type(error).__name__)
        return
    if status == jobs.Status.CANCELED:
        _count_outcome(job, status)


def _fail(engine: Engine, job: ClaimedJob, error: JobError) -> None:
    if _finish(engine, job, jobs.fail(job.id, job.attempt, error), jobs.Status.FAILED):
        log.warning("job %s failed: %s", job.id, error.code, extra={"job_id": str(job.id)})


def _succeed(engine: Engine, job: ClaimedJob) -> None:
    with shutdown.interruptible():
        key, result = _render_and_store(engine, job)
    ttl = timedelta(seconds=settings.result_ttl_seconds)
    # A bulk export's rows_written ends at the file's row count; the other types report none.
    rows = result["row_count"] if job.type is JobType.EXPORTACION_MASIVA else None
    succeeded = jobs.succeed(
        job.id, job.attempt, result=result, storage_key=key, result_ttl=ttl, rows_written=rows
    )
    if _finish(engine, job, succeeded, jobs.Status.SUCCEEDED):
        log.info(
            "job %s succeeded",
            job.id,
            extra={"job_id": str(job.id), "row_count": result["row_count"]},
        )
        return
    # Canceled (or taken over) during the final step. The file is this attempt's alone: no
    # one will ever fetch it.
    log.info("job %s: result discarded (canceled or taken over)", job.id)
    storage.get_storage().delete(key)
    if _current_status(engine, job) == jobs.Status.CANCELED:
        _count_outcome(job, jobs.Status.CANCELED)


def _backoff_seconds(attempt: int) -> int:
    return int(min(2**attempt, 60))


def run(celery_task: Task, job_id_text: str) -> None:
    """One delivery of a job's message, whatever the job type."""
    engine = db.sync_engine()
    job_id = uuid.UUID(job_id_text)
    try:
        row = db.execute_alone(engine, jobs.claim(job_id))
    except Exception as error:
        if not is_transient(error):
            raise
        # Not even claimed: the job stays queued; the retry (or the scheduler) tries again.
        log.warning("job %s: cannot claim (%s); retrying", job_id, type(error).__name__)
        raise celery_task.retry(
            countdown=_backoff_seconds(celery_task.request.retries + 1)
        ) from error
    if row is None:
        # This line too carries the request id that made the job, though nothing was claimed.
        token = request_id_var.set(_request_id_of(engine, job_id))
        try:
            log.info("job %s: nothing to claim (duplicate delivery, or no longer queued)", job_id)
        finally:
            request_id_var.reset(token)
        return
    job = ClaimedJob(row.id, JobType(row.type), row.params, row.attempts, time.monotonic())
    if job.attempt == 1:  # a retry's wait would include its earlier attempts
        metrics.job_claimed(job.type, row.started_at - row.created_at)
    token = request_id_var.set(row.request_id)
    try:
        # The claim is not announced: it ends no wait, and the export's round trip to Redis
        # would come before its render.
        log.info("job %s claimed (attempt %d)", job.id, job.attempt, extra={"type": job.type})
        retry_in = _attempt(engine, job)
    finally:
        request_id_var.reset(token)
    if retry_in is not None:
        raise celery_task.retry(countdown=retry_in)


def _request_id_of(engine: Engine, job_id: uuid.UUID) -> str | None:
    try:
        row = db.execute_alone(engine, jobs.select_request_id(job_id))
    except Exception:  # only a log line's request id is at stake
        return None
    return None if row is None else row.request_id


def _attempt(engine: Engine, job: ClaimedJob) -> int | None:
    """Run a claimed job to its outcome. Returns a delay when the job went back to the queue
    for a retry, None when this attempt is over."""
    try:
        _succeed(engine, job)
    except shutdown.WorkerStopping:
        return _hand_back(engine, job)
    except JobLost:
        log.info("job %s: stopped (canceled or taken over)", job.id)
        _count_if_canceled(engine, job)
    except exports.ClienteNotFound as error:
        _fail(engine, job, JobError("cliente_not_found", str(error) or "Customer not found."))
    except InvalidParams as error:
        _fail(engine, job, JobError("invalid_params", str(error)))
    except TooManyRows as error:
        message = f"{error}: ask for csv or jsonl, or narrow the filters."
        _fail(engine, job, JobError("too_many_rows", message))
    except SoftTimeLimitExceeded:
        limit = TIME_LIMITS[job.type]
        _fail(engine, job, JobError("time_limit", f"The job ran longer than {limit} s."))
    except Exception as error:
        if is_transient(error):
            return _release_for_retry(engine, job, error)
        log.exception("job %s: unexpected error", job.id)
        message = f"Unexpected error ({type(error).__name__}); the worker log has the details."
        _fail(engine, job, JobError("internal_error", message))
    return None


def _hand_back(engine: Engine, job: ClaimedJob) -> int | None:
    """The worker is stopping: the job goes back to the queue and its message is published
    again at once (the caller's retry), for a worker that stays."""
    try:
        if not _finish(engine, job, jobs.release(job.id, job.attempt), jobs.Status.QUEUED):
            return None  # canceled or taken over meanwhile
    except Exception as error:
        # Still running in the database: the scheduler requeues it once its heartbeat is stale.
        log.warning("job %s: not handed back (%s)", job.id, type(error).__name__)
        return None
    log.info("job %s: handed back to the queue (worker stopping)", job.id)
    return 0


def _release_for_retry(engine: Engine, job: ClaimedJob, error: Exception) -> int | None:
    what = "storage" if is_storage_outage(error) else "database"
    if job.attempt >= jobs.MAX_ATTEMPTS:
        message = f"The {what} stayed unavailable through {job.attempt} attempts."
        _fail(engine, job, JobError(f"{what}_unavailable", message))
        return None
    delay = _backoff_seconds(job.attempt)
    log.warning(
        "job %s: %s unavailable (%s); retry in %d s",
        job.id,
        what,
        type(error).__name__,
        delay,
    )
    try:
        if not _finish(engine, job, jobs.release(job.id, job.attempt), jobs.Status.QUEUED):
            return None  # canceled meanwhile: nothing to retry
    except Exception as release_error:
        if not is_transient(release_error):
            raise
        # Still running in the database: the scheduler requeues it once its heartbeat is stale.
        return None
    return delay


def _job_task(job_type: JobType) -> Callable[[Callable[..., Any]], Any]:
    limit = TIME_LIMITS[job_type]
    return task(
        name=job_queue.TASK_NAMES[job_type],
        bind=True,
        max_retries=MAX_MESSAGE_RETRIES,
        soft_time_limit=limit,
        time_limit=limit + HARD_LIMIT_GRACE_SECONDS,
    )


@_job_task(JobType.EXPORT_CLIENTE)
def export_cliente(self: Task, job_id: str) -> None:
    run(self, job_id)


@_job_task(JobType.REPORTE_FIDELIZACION)
def reporte_fidelizacion(self: Task, job_id: str) -> None:
    run(self, job_id)


@_job_task(JobType.EXPORTACION_MASIVA)
def exportacion_masiva(self: Task, job_id: str) -> None:
    run(self, job_id)

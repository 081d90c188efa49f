"""The job state machine against the real database: each guarded UPDATE moves a job only along
an allowed edge, only for the attempt (or owner) it names, and a refused transition changes
nothing.

Like every module of tests/database, it has a database of its own (conftest.py).
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Row, text

from services.query_api.jobs import repository
from shared import jobs
from shared.jobs import JobError, JobType
from tests.database.job_rows import RESULT, TTL, age, claimed, execute, new_job, new_owner, row_of


@pytest.fixture(scope="module")
def owner(engine: Engine) -> uuid.UUID:
    return new_owner(engine, "job-state")


@pytest.fixture(scope="module")
def other_owner(engine: Engine) -> uuid.UUID:
    return new_owner(engine, "job-state-other")


def test_claim_takes_a_queued_job_once(engine: Engine, owner: uuid.UUID) -> None:
    job_id = new_job(engine, owner)
    first = execute(engine, jobs.claim(job_id))
    assert first is not None and first.attempts == 1 and first.request_id == "req-1"
    assert execute(engine, jobs.claim(job_id)) is None, "a duplicate delivery claims nothing"
    state = row_of(engine, job_id)
    assert (state.status, state.attempts, state.progress, state.error) == ("running", 1, 0, None)


def test_racing_claims_let_exactly_one_through(engine: Engine, owner: uuid.UUID) -> None:
    job_id = new_job(engine, owner)
    results: list[Row[Any] | None] = []
    with engine.begin() as first:
        assert first.execute(*jobs.claim(job_id)).first() is not None  # holds the row lock
        second = threading.Thread(
            target=lambda: results.append(execute(engine, jobs.claim(job_id)))
        )
        second.start()
        second.join(0.5)
        assert second.is_alive(), "the second claim must wait for the first to commit"
    second.join(10)
    assert results == [None]
    assert row_of(engine, job_id).attempts == 1


def test_heartbeat_counts_only_for_the_running_attempt(engine: Engine, owner: uuid.UUID) -> None:
    job_id, attempt = claimed(engine, owner)
    assert execute(engine, jobs.heartbeat(job_id, attempt, 40)) is not None
    assert row_of(engine, job_id).progress == 40
    assert execute(engine, jobs.heartbeat(job_id, attempt + 1, 90)) is None
    assert row_of(engine, job_id).progress == 40
    assert execute(engine, jobs.cancel(job_id, owner)) is not None
    assert execute(engine, jobs.heartbeat(job_id, attempt)) is None, "canceled: the worker stops"


def test_succeed_needs_the_running_attempt_and_sets_the_result(
    engine: Engine, owner: uuid.UUID
) -> None:
    queued = new_job(engine, owner)
    assert (
        execute(engine, jobs.succeed(queued, 0, result=RESULT, storage_key="k", result_ttl=TTL))
        is None
    )
    assert row_of(engine, queued).status == "queued"

    job_id, attempt = claimed(engine, owner)
    stale = jobs.succeed(job_id, attempt - 1, result=RESULT, storage_key="k", result_ttl=TTL)
    assert execute(engine, stale) is None
    done = jobs.succeed(job_id, attempt, result=RESULT, storage_key="k", result_ttl=TTL)
    assert execute(engine, done) is not None
    state = row_of(engine, job_id)
    assert (state.status, state.progress, state.result, state.error) == (
        "succeeded",
        100,
        RESULT,
        None,
    )
    assert state.expires_at > datetime.now(UTC) + TTL - timedelta(minutes=1)
    assert execute(engine, done) is None, "succeeding twice is refused"
    for refused in (jobs.claim(job_id), jobs.release(job_id, attempt), jobs.cancel(job_id, owner)):
        assert execute(engine, refused) is None
    assert row_of(engine, job_id).status == "succeeded"


def test_fail_and_release_only_leave_running(engine: Engine, owner: uuid.UUID) -> None:
    queued = new_job(engine, owner)
    assert execute(engine, jobs.fail(queued, 0, JobError("x", "y"))) is None
    assert execute(engine, jobs.release(queued, 0)) is None

    job_id, attempt = claimed(engine, owner)
    assert execute(engine, jobs.release(job_id, attempt)) is not None
    assert row_of(engine, job_id).status == "queued"
    again = execute(engine, jobs.claim(job_id))
    assert again is not None and again.attempts == 2
    assert execute(engine, jobs.fail(job_id, 1, JobError("x", "old attempt"))) is None
    assert execute(engine, jobs.fail(job_id, 2, JobError("cliente_not_found", "gone"))) is not None
    state = row_of(engine, job_id)
    assert state.status == "failed"
    assert state.error == {"code": "cliente_not_found", "message": "gone"}
    for refused in (jobs.claim(job_id), jobs.cancel(job_id, owner), jobs.release(job_id, 2)):
        assert execute(engine, refused) is None
    assert row_of(engine, job_id).status == "failed"


def test_cancel_is_the_owners_and_only_before_the_end(
    engine: Engine, owner: uuid.UUID, other_owner: uuid.UUID
) -> None:
    queued = new_job(engine, owner)
    assert execute(engine, jobs.cancel(queued, other_owner)) is None
    assert execute(engine, jobs.cancel(queued, owner)) is not None
    assert row_of(engine, queued).status == "canceled"
    assert execute(engine, jobs.claim(queued)) is None, "a canceled job is never claimed"

    running, _ = claimed(engine, owner)
    assert execute(engine, jobs.cancel(running, owner)) is not None
    assert row_of(engine, running).status == "canceled"


def test_discarding_a_result_expires_only_a_succeeded_job(
    engine: Engine, owner: uuid.UUID, other_owner: uuid.UUID
) -> None:
    job_id, attempt = claimed(engine, owner)
    assert execute(engine, jobs.discard_result(job_id, owner)) is None, "running: not discardable"
    execute(
        engine, jobs.succeed(job_id, attempt, result=RESULT, storage_key="jobs/k", result_ttl=TTL)
    )
    assert execute(engine, jobs.discard_result(job_id, other_owner)) is None
    discarded = execute(engine, jobs.discard_result(job_id, owner))
    assert discarded is not None and discarded.storage_key == "jobs/k"
    state = row_of(engine, job_id)
    assert state.status == "expired" and state.expires_at <= datetime.now(UTC)
    assert execute(engine, jobs.discard_result(job_id, owner)) is None


def test_expire_due_takes_only_succeeded_jobs_past_their_expiry(
    engine: Engine, owner: uuid.UUID
) -> None:
    due, attempt = claimed(engine, owner)
    execute(
        engine, jobs.succeed(due, attempt, result=RESULT, storage_key="jobs/due", result_ttl=TTL)
    )
    fresh, attempt = claimed(engine, owner)
    execute(
        engine,
        jobs.succeed(fresh, attempt, result=RESULT, storage_key="jobs/fresh", result_ttl=TTL),
    )
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": due},
        )
    with engine.begin() as connection:
        expired = {row.id: row.storage_key for row in connection.execute(jobs.expire_due())}
    assert expired.get(due) == "jobs/due" and fresh not in expired
    assert (row_of(engine, due).status, row_of(engine, fresh).status) == ("expired", "succeeded")


def test_stale_running_jobs_are_requeued_then_failed_when_attempts_run_out(
    engine: Engine, owner: uuid.UUID
) -> None:
    stale_after = timedelta(seconds=60)
    fresh, _ = claimed(engine, owner)
    stale, _ = claimed(engine, owner)
    age(engine, stale, 120)
    with engine.begin() as connection:
        requeued = {row.id for row in connection.execute(jobs.requeue_stale_running(stale_after))}
    assert stale in requeued and fresh not in requeued
    assert (row_of(engine, stale).status, row_of(engine, fresh).status) == ("queued", "running")

    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET attempts = :n - 1 WHERE id = :id"),
            {"n": jobs.MAX_ATTEMPTS, "id": stale},
        )
    assert execute(engine, jobs.claim(stale)) is not None  # the last attempt
    age(engine, stale, 120)
    with engine.begin() as connection:
        assert stale not in {
            r.id for r in connection.execute(jobs.requeue_stale_running(stale_after))
        }
        failed = set(connection.execute(jobs.fail_stale_exhausted(stale_after)).scalars())
    assert stale in failed
    state = row_of(engine, stale)
    assert state.status == "failed" and state.error["code"] == "worker_lost"


def test_lost_queued_jobs_are_touched_once_per_threshold(engine: Engine, owner: uuid.UUID) -> None:
    lost = new_job(engine, owner)
    recent = new_job(engine, owner)
    age(engine, lost, 120)
    with engine.begin() as connection:
        touched = {
            row.id for row in connection.execute(jobs.touch_lost_queued(timedelta(seconds=60)))
        }
    assert lost in touched and recent not in touched
    with engine.begin() as connection:
        again = {
            row.id for row in connection.execute(jobs.touch_lost_queued(timedelta(seconds=60)))
        }
    assert lost not in again, "a second sweeper does not publish it again"
    assert row_of(engine, lost).status == "queued"


def test_an_idempotency_key_is_taken_once_until_forgotten(engine: Engine, owner: uuid.UUID) -> None:
    key = f"key-{uuid.uuid4()}"
    first = new_job(engine, owner, idempotency_key=key)
    with engine.begin() as connection:
        duplicate = connection.execute(
            jobs.create(
                job_type=JobType.EXPORT_CLIENTE,
                params={},
                api_key_id=owner,
                idempotency_key=key,
                request_id=None,
                created_at=datetime.now(UTC),
            )
        ).first()
        assert duplicate is None
        forget = repository.forget_idempotency_key(owner, key, older_than=timedelta(hours=24))
        assert connection.execute(forget).rowcount == 0, "a recent key is kept"
        connection.execute(
            text("UPDATE jobs SET created_at = now() - interval '25 hours' WHERE id = :id"),
            {"id": first},
        )
        assert connection.execute(forget).rowcount == 1
    assert new_job(engine, owner, idempotency_key=key) != first

"""The webhook outbox against the real database: every final transition of a job records one
event per subscribed endpoint of the job's key in its own statement, nothing when the transition
is refused or rolled back; and the delivery statements' claim, lease and sweep."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, Executable, text

from shared import jobs, webhooks
from shared.jobs import JobError
from shared.models import WebhookEndpoint
from tests.database.job_rows import RESULT, TTL, age, claimed, execute, new_job, new_owner


def endpoint(engine: Engine, owner: uuid.UUID, events: list[str]) -> uuid.UUID:
    with engine.begin() as connection:
        endpoint_id: uuid.UUID = connection.execute(
            WebhookEndpoint.__table__.insert()  # type: ignore[attr-defined]
            .values(
                id=uuid.uuid4(),
                api_key_id=owner,
                url="https://example.com/hook",
                events=events,
                secret=webhooks.new_secret(),
            )
            .returning(WebhookEndpoint.id)
        ).scalar_one()
    return endpoint_id


def events_of(engine: Engine, job_id: uuid.UUID) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT id, endpoint_id, type, data, status FROM webhook_events"
                    " WHERE job_id = :job ORDER BY endpoint_id"
                ),
                {"job": job_id},
            )
        )


@pytest.fixture
def owner(engine: Engine) -> uuid.UUID:
    return new_owner(engine, f"outbox-{uuid.uuid4().hex[:8]}")


def _succeeded(engine: Engine, owner: uuid.UUID) -> uuid.UUID:
    job_id, attempt = claimed(engine, owner)
    done = jobs.succeed(job_id, attempt, result=RESULT, storage_key="jobs/x", result_ttl=TTL)
    assert execute(engine, done) is not None
    return job_id


def _sweep(statement: Executable) -> Callable[[Engine], list[Any]]:
    def run(engine: Engine) -> list[Any]:
        with engine.begin() as connection:
            return list(connection.execute(statement))

    return run


# Each final transition: (prepare a job, run the transition) → the event it must record.
def _by_succeed(engine: Engine, owner: uuid.UUID) -> tuple[uuid.UUID, Any]:
    job_id, attempt = claimed(engine, owner)
    done = jobs.succeed(job_id, attempt, result=RESULT, storage_key="jobs/x", result_ttl=TTL)
    return job_id, execute(engine, done)


def _by_fail(engine: Engine, owner: uuid.UUID) -> tuple[uuid.UUID, Any]:
    job_id, attempt = claimed(engine, owner)
    return job_id, execute(engine, jobs.fail(job_id, attempt, JobError("x", "y")))


def _by_cancel(engine: Engine, owner: uuid.UUID) -> tuple[uuid.UUID, Any]:
    job_id = new_job(engine, owner)
    return job_id, execute(engine, jobs.cancel(job_id, owner))


def _by_discard(engine: Engine, owner: uuid.UUID) -> tuple[uuid.UUID, Any]:
    job_id = _succeeded(engine, owner)
    return job_id, execute(engine, jobs.discard_result(job_id, owner))


def _by_expiry(engine: Engine, owner: uuid.UUID) -> tuple[uuid.UUID, Any]:
    job_id = _succeeded(engine, owner)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = :id"),
            {"id": job_id},
        )
    rows = {row.id: row for row in _sweep(jobs.expire_due())(engine)}
    return job_id, rows[job_id]


def _by_lost_worker(engine: Engine, owner: uuid.UUID) -> tuple[uuid.UUID, Any]:
    job_id, _ = claimed(engine, owner)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET attempts = :n WHERE id = :id"),
            {"n": jobs.MAX_ATTEMPTS, "id": job_id},
        )
    age(engine, job_id, 120)
    rows = {row.id: row for row in _sweep(jobs.fail_stale_exhausted(timedelta(seconds=60)))(engine)}
    return job_id, rows[job_id]


@pytest.mark.parametrize(
    ("transition", "event_type", "status"),
    [
        (_by_succeed, "job.succeeded", "succeeded"),
        (_by_fail, "job.failed", "failed"),
        (_by_cancel, "job.canceled", "canceled"),
        (_by_discard, "job.expired", "expired"),
        (_by_expiry, "job.expired", "expired"),
        (_by_lost_worker, "job.failed", "failed"),
    ],
)
def test_every_final_transition_records_its_event_for_subscribed_endpoints(
    engine: Engine,
    owner: uuid.UUID,
    transition: Callable[[Engine, uuid.UUID], tuple[uuid.UUID, Any]],
    event_type: str,
    status: str,
) -> None:
    everything = endpoint(engine, owner, [str(t) for t in webhooks.EventType])
    subscribed = endpoint(engine, owner, [event_type])
    endpoint(engine, owner, [t for t in webhooks.EventType if t != event_type])  # not this one
    stranger = new_owner(engine, "outbox-stranger")
    endpoint(engine, stranger, [str(t) for t in webhooks.EventType])

    job_id, row = transition(engine, owner)

    assert row is not None
    recorded = events_of(engine, job_id)
    final = [event for event in recorded if event.type == event_type]
    assert {event.endpoint_id for event in final} == {everything, subscribed}
    assert sorted(row.webhook_events) == sorted(event.id for event in final)
    for event in final:
        assert event.status == "pending"
        assert event.data["id"] == str(job_id) and event.data["status"] == status


def test_a_refused_or_rolled_back_transition_records_nothing(
    engine: Engine, owner: uuid.UUID
) -> None:
    endpoint(engine, owner, [str(t) for t in webhooks.EventType])
    job_id, attempt = claimed(engine, owner)
    stale = jobs.fail(job_id, attempt - 1, JobError("x", "an older attempt"))
    assert execute(engine, stale) is None
    with pytest.raises(RuntimeError), engine.begin() as connection:
        assert connection.execute(jobs.fail(job_id, attempt, JobError("x", "y"))).first()
        raise RuntimeError("rolled back")
    assert events_of(engine, job_id) == []
    assert execute(engine, jobs.fail(job_id, attempt, JobError("x", "y"))) is not None
    assert len(events_of(engine, job_id)) == 1


def test_a_claimed_event_is_held_until_its_lease_passes_and_then_swept(
    engine: Engine, owner: uuid.UUID
) -> None:
    endpoint(engine, owner, ["job.succeeded"])
    job_id = _succeeded(engine, owner)
    (event,) = events_of(engine, job_id)
    first = execute(engine, webhooks.claim(event.id))
    assert first is not None and first.attempts == 1 and first.url == "https://example.com/hook"
    assert execute(engine, webhooks.claim(event.id)) is None, "held by the first attempt"

    # The first attempt's worker died: its lease passes; the sweep sends the event again.
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE webhook_events SET locked_until = now() - interval '1 s',"
                " published_at = now() - interval '1 hour' WHERE id = :id"
            ),
            {"id": event.id},
        )
    swept = {row.id for row in _sweep(webhooks.touch_unsent_due(timedelta(minutes=10)))(engine)}
    assert event.id in swept
    assert event.id not in {
        row.id for row in _sweep(webhooks.touch_unsent_due(timedelta(minutes=10)))(engine)
    }, "published again only once the threshold passes again"
    second = execute(engine, webhooks.claim(event.id))
    assert second is not None and second.attempts == 2
    # The first attempt, late, cannot settle the event any more; the second can.
    assert execute(engine, webhooks.delivered(event.id, 1)) is None
    retry = datetime.now(UTC) + timedelta(hours=1)
    assert execute(engine, webhooks.retry_at(event.id, 2, retry, published=False)) is not None
    assert execute(engine, webhooks.claim(event.id)) is None, "not due for an hour"


def test_the_retry_schedule_ends_the_event() -> None:
    delays = (0.5, 1.0, 2.0)
    assert webhooks.next_delay(1, delays) == timedelta(seconds=0.5)
    assert webhooks.next_delay(3, delays) == timedelta(seconds=2)
    assert webhooks.next_delay(4, delays) is None

"""Webhooks (SPEC §11): the events, the outbox statements, the retry schedule and the signature.

A job's final transition (shared.jobs) records one event per subscribed endpoint of the job's
API key in the same statement, so an event exists exactly when the transition committed: the
outbox. The webhooks worker (services/export_worker/webhooks.py) then claims an event, POSTs it,
and records the attempt; a failed attempt waits its turn in WEBHOOK_RETRY_SECONDS and the
scheduler's sweep sends any event whose message was lost. Delivery is at least once: a receiver
deduplicates by `Clientes-Event-Id`.

    pending → delivered     (a 2xx answer)
    pending → failed        (the retry schedule ran out)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Insert,
    Update,
    any_,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)

from shared.models import WebhookAttempt, WebhookEndpoint, WebhookEvent


class EventType(StrEnum):
    JOB_SUCCEEDED = "job.succeeded"
    JOB_FAILED = "job.failed"
    JOB_CANCELED = "job.canceled"
    JOB_EXPIRED = "job.expired"


class EventStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


SIGNATURE_HEADER = "Clientes-Signature"
EVENT_ID_HEADER = "Clientes-Event-Id"
TIMEOUT_SECONDS = 10.0
# An attempt holds its event this long: the POST's timeout and a margin to record it. A worker
# killed mid-delivery lets go when it passes, and the sweep sends the event again.
LEASE = timedelta(seconds=TIMEOUT_SECONDS + 5)
# A message may arrive a moment before its event is due (the clocks of the worker and PostgreSQL).
EARLY_SLACK = timedelta(seconds=1)
SWEEP_BATCH = 500


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(24)


# Signing: Stripe's scheme. The receiver recomputes the HMAC over "<t>.<raw body>" and rejects
# old timestamps, so a captured delivery cannot be replayed later.


def signature(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def body(event_id: uuid.UUID, event_type: str, created_at: datetime, data: Any) -> bytes:
    """The JSON POSTed for an event: the same bytes on every attempt."""
    document = {
        "id": str(event_id),
        "type": event_type,
        "created_at": created_at.isoformat(),
        "data": data,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def next_delay(attempt: int, delays: Sequence[float]) -> timedelta | None:
    """The wait after failed attempt number `attempt` (1, 2, …); None once the schedule ran out."""
    return timedelta(seconds=delays[attempt - 1]) if attempt <= len(delays) else None


# The outbox: written by the job's final transition.


def _job_document(moved: CTE) -> ColumnElement[Any]:
    """The job as `GET /api/jobs/{id}` shows it (services/query_api/jobs/schemas.py), built in
    the statement that ends it."""
    columns = moved.c
    result = case(
        (columns.result.is_(None), null()),
        else_=columns.result.op("||")(
            func.jsonb_build_object(
                "download_url", func.format("/api/jobs/%s/download", columns.id)
            )
        ),
    )
    return func.jsonb_build_object(
        "id", columns.id,
        "type", columns.type,
        "status", columns.status,
        "params", columns.params,
        "progress", columns.progress,
        "created_at", columns.created_at,
        "started_at", columns.started_at,
        "finished_at", columns.finished_at,
        "expires_at", columns.expires_at,
        "error", columns.error,
        "result", result,
    )  # fmt: skip


def record_events(moved: CTE, event: EventType) -> CTE:
    """One pending event per endpoint of each moved job's key that takes `event`. `moved` is the
    transition's UPDATE … RETURNING (with the job's public columns and api_key_id)."""
    subscribed = (
        select(
            WebhookEndpoint.id,
            moved.c.id,
            literal(str(event)),
            _job_document(moved),
        )
        .join_from(moved, WebhookEndpoint, WebhookEndpoint.api_key_id == moved.c.api_key_id)
        .where(any_(WebhookEndpoint.events) == str(event))
    )
    return (
        insert(WebhookEvent)
        .from_select(
            [WebhookEvent.endpoint_id, WebhookEvent.job_id, WebhookEvent.type, WebhookEvent.data],
            subscribed,
        )
        .returning(WebhookEvent.id, WebhookEvent.job_id)
        .cte("webhook_events_recorded")
    )


# Delivery (the webhooks worker).


def _free() -> ColumnElement[bool]:
    return or_(WebhookEvent.locked_until.is_(None), WebhookEvent.locked_until < func.now())


def claim(event_id: uuid.UUID) -> Update:
    """Take a due, pending event for one attempt, with its endpoint's URL and secret. Nothing
    back: delivered, given up, not due yet, held by another attempt, or its endpoint deleted."""
    return (
        update(WebhookEvent)
        .where(
            WebhookEvent.id == event_id,
            WebhookEvent.status == EventStatus.PENDING,
            WebhookEvent.next_attempt_at <= func.now() + EARLY_SLACK,
            _free(),
            WebhookEndpoint.id == WebhookEvent.endpoint_id,
        )
        .values(attempts=WebhookEvent.attempts + 1, locked_until=func.now() + LEASE)
        .returning(
            WebhookEvent.id,
            WebhookEvent.type,
            WebhookEvent.data,
            WebhookEvent.created_at,
            WebhookEvent.attempts,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
        )
    )


def record_attempt(
    event_id: uuid.UUID,
    attempt: int,
    *,
    attempted_at: datetime,
    status_code: int | None,
    duration_ms: int,
    error: str | None,
    next_attempt_at: datetime | None,
) -> Insert:
    return insert(WebhookAttempt).values(
        event_id=event_id,
        attempt=attempt,
        attempted_at=attempted_at,
        status_code=status_code,
        duration_ms=duration_ms,
        error=error,
        next_attempt_at=next_attempt_at,
    )


def _settle(event_id: uuid.UUID, attempt: int, **values: Any) -> Update:
    # Only the attempt holding the event settles it: one whose lease ran out and was taken over
    # leaves the event to its successor.
    return (
        update(WebhookEvent)
        .where(
            WebhookEvent.id == event_id,
            WebhookEvent.status == EventStatus.PENDING,
            WebhookEvent.attempts == attempt,
        )
        .values(locked_until=null(), **values)
        .returning(WebhookEvent.id)
    )


def delivered(event_id: uuid.UUID, attempt: int) -> Update:
    return _settle(
        event_id,
        attempt,
        status=EventStatus.DELIVERED,
        delivered_at=func.now(),
        next_attempt_at=null(),
    )


def retry_at(event_id: uuid.UUID, attempt: int, due: datetime, *, published: bool) -> Update:
    """Due again at `due`. `published`: its message is already on the way (sent with a
    countdown); else the sweep sends it once due."""
    return _settle(
        event_id,
        attempt,
        next_attempt_at=due,
        published_at=due if published else null(),
    )


def give_up(event_id: uuid.UUID, attempt: int) -> Update:
    return _settle(event_id, attempt, status=EventStatus.FAILED, next_attempt_at=null())


def touch_unsent_due(republish_after: timedelta) -> Update:
    """Pending events that are due, not held by an attempt, and whose message is missing (never
    sent: a retry left to the sweep) or presumed lost (sent `republish_after` ago without a
    trace: Redis emptied, a publish failed, a worker killed). The caller publishes them."""
    due = (
        select(WebhookEvent.id)
        .where(
            WebhookEvent.status == EventStatus.PENDING,
            WebhookEvent.next_attempt_at <= func.now(),
            _free(),
            or_(
                WebhookEvent.published_at.is_(None),
                WebhookEvent.published_at < func.now() - republish_after,
            ),
        )
        .order_by(WebhookEvent.next_attempt_at)
        .limit(SWEEP_BATCH)
        .with_for_update(skip_locked=True)
    )
    return (
        update(WebhookEvent)
        .where(WebhookEvent.id.in_(due))
        .values(published_at=func.now())
        .returning(WebhookEvent.id)
    )


def event_ids(rows: Sequence[Any]) -> list[uuid.UUID]:
    """The events a final transition recorded, from its rows (`webhook_events` column)."""
    return [event_id for row in rows for event_id in (row.webhook_events or ())]

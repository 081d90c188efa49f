"""Statements only the API runs on webhook endpoints and their events. The outbox and delivery
statements, which the job transitions and the worker run, are shared.webhooks'."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert, Select, delete, func, insert, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.dml import ReturningDelete

from shared.models import WebhookAttempt, WebhookEndpoint, WebhookEvent

PUBLIC_COLUMNS: tuple[InstrumentedAttribute[Any], ...] = (
    WebhookEndpoint.id,
    WebhookEndpoint.url,
    WebhookEndpoint.events,
    WebhookEndpoint.created_at,
)


def insert_endpoint(api_key_id: uuid.UUID, url: str, events: Sequence[str], secret: str) -> Insert:
    return (
        insert(WebhookEndpoint)
        .values(id=uuid.uuid4(), api_key_id=api_key_id, url=url, events=list(events), secret=secret)
        .returning(*PUBLIC_COLUMNS, WebhookEndpoint.secret)
    )


def select_owned(api_key_id: uuid.UUID) -> Select[Any]:
    query: Select[Any] = select(*PUBLIC_COLUMNS)
    return query.where(WebhookEndpoint.api_key_id == api_key_id).order_by(
        WebhookEndpoint.created_at, WebhookEndpoint.id
    )


def select_one(endpoint_id: uuid.UUID, api_key_id: uuid.UUID) -> Select[Any]:
    return select_owned(api_key_id).where(WebhookEndpoint.id == endpoint_id)


def delete_owned(endpoint_id: uuid.UUID, api_key_id: uuid.UUID) -> ReturningDelete[Any]:
    """The endpoint and (by cascade) its events: pending ones are no longer delivered."""
    return (
        delete(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.api_key_id == api_key_id)
        .returning(WebhookEndpoint.id)
    )


def select_deliveries(endpoint_id: uuid.UUID, *, limit: int) -> Select[Any]:
    """The endpoint's latest events, newest first, each with its attempts as a JSON array."""
    attempt = func.jsonb_build_object(
        "attempt", WebhookAttempt.attempt,
        "attempted_at", WebhookAttempt.attempted_at,
        "status_code", WebhookAttempt.status_code,
        "duration_ms", WebhookAttempt.duration_ms,
        "error", WebhookAttempt.error,
        "next_attempt_at", WebhookAttempt.next_attempt_at,
    )  # fmt: skip
    attempts = (
        select(
            func.coalesce(
                func.jsonb_agg(aggregate_order_by(attempt, WebhookAttempt.id)),
                func.jsonb_build_array(),
            )
        )
        .where(WebhookAttempt.event_id == WebhookEvent.id)
        .scalar_subquery()
    )
    return (
        select(
            WebhookEvent.id.label("event_id"),
            WebhookEvent.type,
            WebhookEvent.job_id,
            WebhookEvent.status,
            WebhookEvent.created_at,
            WebhookEvent.delivered_at,
            WebhookEvent.next_attempt_at,
            attempts.label("attempts"),
        )
        .where(WebhookEvent.endpoint_id == endpoint_id)
        .order_by(WebhookEvent.created_at.desc(), WebhookEvent.id.desc())
        .limit(limit)
    )

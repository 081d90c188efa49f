"""Wire types of the webhooks API (SPEC §11)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared import webhook_urls
from shared.webhooks import EventStatus, EventType


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1),
        Field(examples=["https://example.com/clientes-webhook"]),
    ]
    events: list[EventType] = Field(
        default_factory=lambda: list(EventType),
        min_length=1,
        description="The events to receive; default: all four.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        webhook_urls.parse(url)  # UnsafeUrl is a ValueError: a 422 naming `url`
        return url

    @field_validator("events")
    @classmethod
    def _each_once(cls, events: list[EventType]) -> list[EventType]:
        return list(dict.fromkeys(events))


class Webhook(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    created_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(
        description="Signs every delivery (Clientes-Signature): shown this once, keep it safe."
    )


class DeliveryAttempt(BaseModel):
    attempt: int
    attempted_at: datetime
    status_code: int | None = Field(description="The receiver's answer; null: none came.")
    duration_ms: int
    error: str | None = Field(description="Why the attempt failed; null: a 2xx.")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due.")


class Delivery(BaseModel):
    """One event for this endpoint, and every attempt at delivering it."""

    event_id: uuid.UUID
    type: EventType
    job_id: uuid.UUID | None
    status: EventStatus
    created_at: datetime
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    attempts: list[DeliveryAttempt]


class DeliveryPage(BaseModel):
    results: list[Delivery]

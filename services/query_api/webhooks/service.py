"""Webhook endpoints of an API key: register (the URL checked against SSRF, the secret made and
shown once), list, delete, and the deliveries of one. An endpoint of another key is a 404, like
one that does not exist."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.query_api.auth import Principal
from services.query_api.problems import NotFound, Problem
from services.query_api.webhooks import repository
from services.query_api.webhooks.schemas import Delivery, Webhook, WebhookCreated
from shared import webhook_urls, webhooks
from shared.webhook_urls import UnsafeUrl


async def create(
    db: AsyncEngine, owner: Principal, url: str, events: Sequence[str], *, allow_private: bool
) -> WebhookCreated:
    try:
        # getaddrinfo blocks: off the event loop.
        await asyncio.to_thread(webhook_urls.resolve, url, allow_private=allow_private)
    except UnsafeUrl as error:
        raise Problem(
            422,
            f"url: {error}",
            kind="validation-error",
            errors=[{"field": "url", "message": str(error)}],
        ) from None
    statement = repository.insert_endpoint(owner.key_id, url, events, webhooks.new_secret())
    async with db.begin() as connection:
        row = (await connection.execute(statement)).one()
    return WebhookCreated.model_validate(row._mapping)


async def list_owned(db: AsyncEngine, owner: Principal) -> list[Webhook]:
    async with db.connect() as connection:
        rows = await connection.execute(repository.select_owned(owner.key_id))
        return [Webhook.model_validate(row._mapping) for row in rows]


async def delete(db: AsyncEngine, owner: Principal, endpoint_id: uuid.UUID) -> None:
    async with db.begin() as connection:
        deleted = await connection.execute(repository.delete_owned(endpoint_id, owner.key_id))
        if deleted.first() is None:
            raise _not_found(endpoint_id)


async def deliveries(
    db: AsyncEngine, owner: Principal, endpoint_id: uuid.UUID, *, limit: int
) -> list[Delivery]:
    async with db.connect() as connection:
        owned = await connection.execute(repository.select_one(endpoint_id, owner.key_id))
        if owned.first() is None:
            raise _not_found(endpoint_id)
        rows = await connection.execute(repository.select_deliveries(endpoint_id, limit=limit))
        return [Delivery.model_validate(row._mapping) for row in rows]


def _not_found(endpoint_id: uuid.UUID) -> NotFound:
    return NotFound(f"No webhook endpoint {endpoint_id} for this API key.")

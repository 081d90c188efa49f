"""`/api/webhooks`: an API key's webhook endpoints (scope export). Thin: `service` does the work."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from services.query_api.auth import ExportPrincipal
from services.query_api.deps import Db, ReadDb, SettingsDep
from services.query_api.webhooks import service
from services.query_api.webhooks.schemas import (
    DeliveryPage,
    Webhook,
    WebhookCreate,
    WebhookCreated,
)

router = APIRouter(prefix="/api/webhooks", tags=["webhooks"])

EndpointId = Annotated[uuid.UUID, Path(description="The webhook endpoint's id (a UUID).")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such endpoint for this API key."}
}


@router.post(
    "",
    status_code=201,
    response_model=WebhookCreated,
    responses={
        201: {
            "description": "Registered: the signing secret is in the body, this once.",
            "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
        },
        422: {"description": "A malformed URL, or one whose host is not a public address."},
    },
)
async def create_webhook(
    body: WebhookCreate, owner: ExportPrincipal, db: Db, settings: SettingsDep, response: Response
) -> WebhookCreated:
    created = await service.create(
        db, owner, body.url, body.events, allow_private=settings.webhook_allow_private
    )
    response.headers["Location"] = f"/api/webhooks/{created.id}"
    return created


@router.get("", response_model=list[Webhook])
async def list_webhooks(owner: ExportPrincipal, db: ReadDb) -> list[Webhook]:
    return await service.list_owned(db, owner)


@router.delete("/{endpoint_id}", status_code=204, responses=NOT_FOUND)
async def delete_webhook(endpoint_id: EndpointId, owner: ExportPrincipal, db: Db) -> Response:
    await service.delete(db, owner, endpoint_id)
    return Response(status_code=204)


@router.get("/{endpoint_id}/deliveries", response_model=DeliveryPage, responses=NOT_FOUND)
async def list_deliveries(
    endpoint_id: EndpointId,
    owner: ExportPrincipal,
    db: ReadDb,
    limit: Annotated[int, Query(ge=1, le=200, description="The latest events.")] = 50,
) -> DeliveryPage:
    return DeliveryPage(results=await service.deliveries(db, owner, endpoint_id, limit=limit))

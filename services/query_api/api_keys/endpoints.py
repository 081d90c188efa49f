"""`/api/api-keys`: create, list, show and revoke API keys (scope admin). Thin: `service` runs
the statements (shared.api_keys', which the CLI runs too) and keeps the key cache in step."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from services.query_api.api_keys import service
from services.query_api.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyInfo
from services.query_api.auth import AdminPrincipal
from services.query_api.deps import Db, ReadDb
from services.query_api.problems import NotFound

router = APIRouter(prefix="/api/api-keys", tags=["api-keys"])


@router.post(
    "",
    status_code=201,
    response_model=ApiKeyCreated,
    responses={
        201: {
            "description": "Created: the key is in the body, this once.",
            "headers": {"Location": {"required": True, "schema": {"type": "string"}}},
        }
    },
)
async def create_api_key(
    body: ApiKeyCreate, _: AdminPrincipal, db: Db, response: Response
) -> ApiKeyCreated:
    created = await service.create(db, body.name, body.scopes)
    response.headers["Location"] = f"/api/api-keys/{created.id}"
    return created


@router.get("", response_model=list[ApiKeyInfo])
async def list_api_keys(
    _: AdminPrincipal,
    db: ReadDb,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
) -> list[ApiKeyInfo]:
    return await service.list_keys(db, include_revoked=include_revoked)


@router.get(
    "/{key_id}", response_model=ApiKeyInfo, responses={404: {"description": "No such key."}}
)
async def get_api_key(key_id: uuid.UUID, _: AdminPrincipal, db: ReadDb) -> ApiKeyInfo:
    found = await service.get(db, key_id)
    if found is None:
        raise NotFound(f"No API key with id {key_id}.")
    return found


@router.delete(
    "/{key_id}", status_code=204, responses={404: {"description": "No such active key."}}
)
async def revoke_api_key(
    key_id: uuid.UUID, request: Request, _: AdminPrincipal, db: Db
) -> Response:
    if not await service.revoke(db, request.app.state.api_key_cache, key_id):
        raise NotFound(f"No active API key with id {key_id}.")
    return Response(status_code=204)

"""`/api/api-keys`: create, list, show and revoke API keys (scope admin).

The statements are shared.api_keys' (the CLI runs the same ones). Every change sends NOTIFY in
its transaction so every API process drops its cache of verified keys; this process drops its
own at once too, so the very next request with a revoked key is refused.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field, StringConstraints, field_validator

from services.query_api.auth import AdminPrincipal, ApiKeyCache
from services.query_api.deps import Db, ReadDb
from services.query_api.problems import NotFound
from shared import api_keys
from shared.models import ApiKey

router = APIRouter(prefix="/api/api-keys", tags=["api-keys"])


class ApiKeyCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    scopes: list[str] = Field(
        examples=[["read", "export"]],
        json_schema_extra={"items": {"type": "string", "enum": list(api_keys.SCOPES)}},
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        return api_keys.validate_scopes(scopes)


class ApiKeyCreated(BaseModel):
    id: uuid.UUID
    name: str
    scopes: list[str]
    created_at: datetime
    key: str = Field(description="The key itself: shown this once, only its hash is stored.")


class ApiKeyInfo(BaseModel):
    id: uuid.UUID
    name: str
    key_prefix: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[str]
    created_at: datetime
    revoked_at: datetime | None


def _forget_cached_keys(request: Request) -> None:
    cache: ApiKeyCache = request.app.state.api_key_cache
    cache.invalidate()


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
    new_key = api_keys.generate_key()
    async with db.begin() as connection:
        row = (await connection.execute(api_keys.insert_key(body.name, body.scopes, new_key))).one()
        await connection.execute(api_keys.NOTIFY_CHANGED)
    response.headers["Location"] = f"/api/api-keys/{row.id}"
    return ApiKeyCreated(
        id=row.id, name=row.name, scopes=row.scopes, created_at=row.created_at, key=new_key.key
    )


@router.get("", response_model=list[ApiKeyInfo])
async def list_api_keys(
    _: AdminPrincipal,
    db: ReadDb,
    include_revoked: Annotated[bool, Query(description="Also list revoked keys.")] = False,
) -> list[ApiKeyInfo]:
    async with db.connect() as connection:
        rows = await connection.execute(api_keys.select_keys(include_revoked=include_revoked))
        return [ApiKeyInfo.model_validate(row._mapping) for row in rows]


@router.get(
    "/{key_id}", response_model=ApiKeyInfo, responses={404: {"description": "No such key."}}
)
async def get_api_key(key_id: uuid.UUID, _: AdminPrincipal, db: ReadDb) -> ApiKeyInfo:
    statement = api_keys.select_keys(include_revoked=True).where(ApiKey.id == key_id)
    async with db.connect() as connection:
        row = (await connection.execute(statement)).first()
    if row is None:
        raise NotFound(f"No API key with id {key_id}.")
    return ApiKeyInfo.model_validate(row._mapping)


@router.delete(
    "/{key_id}", status_code=204, responses={404: {"description": "No such active key."}}
)
async def revoke_api_key(
    key_id: uuid.UUID, request: Request, _: AdminPrincipal, db: Db
) -> Response:
    async with db.begin() as connection:
        if (await connection.execute(api_keys.revoke_key(key_id))).first() is None:
            raise NotFound(f"No active API key with id {key_id}.")
        await connection.execute(api_keys.NOTIFY_CHANGED)
    _forget_cached_keys(request)
    return Response(status_code=204)

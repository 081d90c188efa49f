"""API keys: the admin's operations and the bootstrap key, on the statements of shared.api_keys
(which the `api_keys` CLI runs too).

Every change sends NOTIFY in its transaction, so every API process drops its cache of verified
keys (auth.ApiKeyCache); a revocation also drops this process's cache at once, so the very next
request with a revoked key is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from services.query_api.api_keys.schemas import ApiKeyCreated, ApiKeyInfo
from services.query_api.auth import ApiKeyCache
from shared import api_keys
from shared.models import ApiKey


async def create(db: AsyncEngine, name: str, scopes: Sequence[str]) -> ApiKeyCreated:
    new_key = api_keys.generate_key()
    async with db.begin() as connection:
        row = (await connection.execute(api_keys.insert_key(name, scopes, new_key))).one()
        await connection.execute(api_keys.NOTIFY_CHANGED)
    return ApiKeyCreated(
        id=row.id, name=row.name, scopes=row.scopes, created_at=row.created_at, key=new_key.key
    )


async def list_keys(db: AsyncEngine, *, include_revoked: bool) -> list[ApiKeyInfo]:
    async with db.connect() as connection:
        rows = await connection.execute(api_keys.select_keys(include_revoked=include_revoked))
        return [ApiKeyInfo.model_validate(row._mapping) for row in rows]


async def get(db: AsyncEngine, key_id: uuid.UUID) -> ApiKeyInfo | None:
    statement = api_keys.select_keys(include_revoked=True).where(ApiKey.id == key_id)
    async with db.connect() as connection:
        row = (await connection.execute(statement)).first()
    return None if row is None else ApiKeyInfo.model_validate(row._mapping)


async def revoke(db: AsyncEngine, cache: ApiKeyCache, key_id: uuid.UUID) -> bool:
    """Revoke an active key; False when there is no such active key."""
    async with db.begin() as connection:
        if (await connection.execute(api_keys.revoke_key(key_id))).first() is None:
            return False
        await connection.execute(api_keys.NOTIFY_CHANGED)
    cache.invalidate()
    return True


async def ensure_bootstrap_key(db: AsyncEngine, key: str) -> None:
    """API_BOOTSTRAP_KEY: a key with this value and every scope exists (compose, `make run`)."""
    async with db.begin() as connection:
        await connection.execute(api_keys.upsert_bootstrap_key(key))
        await connection.execute(api_keys.NOTIFY_CHANGED)

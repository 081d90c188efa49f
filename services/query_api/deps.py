"""Annotated dependencies that keep endpoint signatures short and uniform.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per
request on the hot path for what is only an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import Settings


async def _engine(request: Request) -> AsyncEngine:
    """Transactional engine: `async with db.begin() as conn` for writes."""
    engine: AsyncEngine = request.app.state.engine
    return engine


async def _read_engine(request: Request) -> AsyncEngine:
    """Autocommit engine on the same pool: a lookup is one round trip, no BEGIN/ROLLBACK."""
    engine: AsyncEngine = request.app.state.read_engine
    return engine


async def _lookup_pool(request: Request) -> AsyncConnectionPool:
    """The lookups' psycopg pool (shared.db.async_lookup_pool): autocommit, one round trip."""
    pool: AsyncConnectionPool = request.app.state.lookup_pool
    return pool


async def _redis(request: Request) -> Redis:
    client: Redis = request.app.state.redis
    return client


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


Db = Annotated[AsyncEngine, Depends(_engine)]
ReadDb = Annotated[AsyncEngine, Depends(_read_engine)]
LookupPool = Annotated[AsyncConnectionPool, Depends(_lookup_pool)]
RedisDep = Annotated[Redis, Depends(_redis)]
SettingsDep = Annotated[Settings, Depends(_settings)]

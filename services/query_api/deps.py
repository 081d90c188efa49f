"""Annotated dependencies that keep endpoint signatures short and uniform: each hands an endpoint
one of the things the app's lifespan (main.py) put in `app.state`.

All `async def`: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per
request on the hot path for what is only an attribute read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar, cast

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import Settings

T = TypeVar("T")


def _app_state(name: str, _: type[T]) -> Callable[[Request], Awaitable[T]]:
    async def dependency(request: Request) -> T:
        return cast(T, getattr(request.app.state, name))

    return dependency


# Transactional engine: `async with db.begin() as conn` for writes.
Db = Annotated[AsyncEngine, Depends(_app_state("engine", AsyncEngine))]
# Autocommit engine on the same pool: a read is one round trip, no BEGIN/ROLLBACK.
ReadDb = Annotated[AsyncEngine, Depends(_app_state("read_engine", AsyncEngine))]
# The lookups' psycopg pool (shared.db.async_lookup_pool): autocommit, one round trip.
LookupPool = Annotated[AsyncConnectionPool, Depends(_app_state("lookup_pool", AsyncConnectionPool))]
RedisDep = Annotated[Redis, Depends(_app_state("redis", Redis))]
# Long polls' own Redis pool (`?wait`): they hold a connection each for up to 30 s.
WaitRedis = Annotated[Redis, Depends(_app_state("wait_redis", Redis))]
SettingsDep = Annotated[Settings, Depends(_app_state("settings", Settings))]

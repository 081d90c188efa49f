"""Engines. The API uses the async engine; workers and CLIs use the sync one (psycopg 3 both)."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import Settings, get_settings


def _connect_args(settings: Settings) -> dict[str, object]:
    # Every session speaks UTC (ISO timestamps with +00:00) and gives up on runaway queries.
    return {
        "options": f"-c timezone=UTC -c statement_timeout={settings.db_statement_timeout_ms}",
        "connect_timeout": 5,
    }


@lru_cache
def sync_engine() -> Engine:
    settings = get_settings()
    return create_engine(
        settings.sqlalchemy_url,
        pool_size=2,
        pool_pre_ping=True,
        connect_args=_connect_args(settings),
    )


def async_engine(settings: Settings | None = None) -> AsyncEngine:
    settings = settings or get_settings()
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=5,
        # No pre-ping: it would double the round trips of every lookup. A connection found dead
        # is invalidated with the rest of the pool on its first error (that request gets 503).
        pool_recycle=1800,
        connect_args=_connect_args(settings),
    )

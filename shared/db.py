"""Connections. Workers and CLIs use the sync engine; the API uses the async engine for jobs and
keys, and a plain psycopg pool for the lookups (their SQL renders the JSON; no ORM in between).

With READ_DATABASE_URL set (a streaming replica), the lookups and lists (the lookup pool) and
the report queries (sync_read_engine) read the replica; everything that writes, and every read
of jobs and keys, stays on the primary, so a client always sees the job it just created."""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, Executable, Row, create_engine, event, exc
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from shared.settings import Settings, get_settings, to_libpq_url, to_psycopg_url

# SQLAlchemy puts a failed statement's parameters in the exception's text, and so in any log
# line with its traceback: those are document numbers, e-mails and phones (issue #5).
HIDE_PARAMETERS = True


def _connect_args(settings: Settings) -> dict[str, object]:
    # Every session speaks UTC (ISO timestamps with +00:00) and gives up on runaway queries.
    return {
        "options": f"-c timezone=UTC -c statement_timeout={settings.db_statement_timeout_ms}",
        "connect_timeout": 5,
    }


# A connection back in the pool for less than this is taken as alive, and only one that sat
# idle longer is pinged (a round trip) on checkout: long enough to skip the ping between a job's
# three checkouts (claim, render, outcome), which follow each other within milliseconds and
# each paid a round trip for it. A connection that died within the second (the server restarted
# that fast) fails its statement instead, which the job's code treats as any outage mid-job.
PING_AFTER_IDLE_SECONDS = 1.0
_RETURNED_AT = "returned_at"  # in a pooled connection's `info`: when it was last checked in


def create_sync_engine(url: str, settings: Settings) -> Engine:
    """An engine of the workers, CLIs and scheduler (sync_engine() and sync_read_engine() keep
    one each)."""
    engine = create_engine(
        to_psycopg_url(url),
        pool_size=2,
        connect_args=_connect_args(settings),
        hide_parameters=HIDE_PARAMETERS,
    )
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """SQLAlchemy's pool_pre_ping, for connections idle over PING_AFTER_IDLE_SECONDS only."""

    @event.listens_for(engine, "checkin")
    def returned(_: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _: PoolProxiedConnection
    ) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None or time.monotonic() - returned_at < PING_AFTER_IDLE_SECONDS:
            return  # never used yet (just connected), or back a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # As a failed pre-ping does: the pool drops its connections and connects anew.
            raise exc.InvalidatePoolError("ping of an idle connection failed") from error


@lru_cache
def sync_engine() -> Engine:
    settings = get_settings()
    return create_sync_engine(settings.database_url, settings)


@lru_cache
def sync_read_engine() -> Engine:
    """The replica's engine for long reads that may lag a moment; the primary's without one."""
    settings = get_settings()
    if not settings.read_database_url:
        return sync_engine()
    return create_sync_engine(settings.read_database_url, settings)


class Bound(NamedTuple):
    """A statement built once, with bind parameters, and their values for one execution:
    `connection.execute(*bound)`. For the statements every job or request runs: SQLAlchemy
    executes the same statement object again without building it, computing its cache key or
    matching its result's columns to the cached compilation's anew (a job's claim: 0.35 ms of
    CPU instead of 1.0; a read of a job by the API: 0.37 instead of 0.93)."""

    statement: Executable
    parameters: Mapping[str, Any]


def execute_alone(engine: Engine, statement: Executable | Bound) -> Row[Any] | None:
    """Run a statement that is a whole transaction by itself (a job's claim, heartbeat or
    outcome), committed as it runs: one round trip where BEGIN, statement, COMMIT take three.
    Returns its first row, if any."""
    bound = statement if isinstance(statement, Bound) else Bound(statement, {})
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        return connection.execute(*bound).first()


def async_engine(settings: Settings | None = None) -> AsyncEngine:
    settings = settings or get_settings()
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=5,
        # No pre-ping: it would add a round trip to every job and key statement. A connection
        # found dead is invalidated with the rest of the pool on its first error (that request
        # gets 503).
        pool_recycle=1800,
        connect_args=_connect_args(settings),
        hide_parameters=HIDE_PARAMETERS,
    )


def async_lookup_pool(settings: Settings | None = None) -> AsyncConnectionPool:
    """The lookups' pool, created closed: `await pool.open(wait=False)` in the app's lifespan.

    Measured on the lookup path (README, benchmarks): psycopg alone costs about half the CPU of
    the SQLAlchemy async engine per query. Autocommit: a lookup is one round trip, no BEGIN.
    Statements repeated on a connection become server-side prepared (psycopg's
    prepare_threshold), as pgbench -M prepared does for the database ceiling.
    """
    settings = settings or get_settings()
    return AsyncConnectionPool(
        to_libpq_url(settings.read_database_url or settings.database_url),
        min_size=1,
        max_size=settings.db_pool_size,
        kwargs={"autocommit": True, **_connect_args(settings)},
        timeout=5,  # waiting for a free connection: then 503, not a hang
        open=False,
        name="lookups",
    )

"""The workers' engine pings only connections that sat idle (shared.db.PING_AFTER_IDLE_SECONDS):
one whose server side went away meanwhile is replaced on checkout, unseen by the caller, while
one back in the pool a moment ago goes out as it is."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from harness.servers import wait_until
from shared import db
from shared.settings import Settings

BACKEND_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
def workers_engine(engine: Engine) -> Iterator[Engine]:
    url = engine.url.render_as_string(hide_password=False)
    workers = db.create_sync_engine(url, Settings(database_url=url))
    yield workers
    workers.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(BACKEND_PID).scalar_one())


def terminate(engine: Engine, pid: int) -> None:
    """End the server side of a connection, and wait until it is gone."""
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    wait_until(lambda: ended(engine, pid), 10, f"backend {pid} ended")


def ended(engine: Engine, pid: int) -> bool:
    # A transaction of its own each time: pg_stat_activity stays as it was within one.
    gone = text("SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE pid = :pid)")
    with engine.connect() as connection:
        return bool(connection.execute(gone, {"pid": pid}).scalar_one())


def test_an_idle_connection_whose_server_side_ended_is_replaced_on_checkout(
    engine: Engine, workers_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.2)
    first = backend_pid(workers_engine)
    terminate(engine, first)
    time.sleep(0.3)
    assert backend_pid(workers_engine) != first


def test_a_connection_back_a_moment_ago_is_not_pinged(
    engine: Engine, workers_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 60)
    terminate(engine, backend_pid(workers_engine))
    with pytest.raises(OperationalError):  # no ping found it dead: the statement does
        backend_pid(workers_engine)
    assert backend_pid(workers_engine), "the pool connects anew after the failure"

"""Every module here gets a database of its own: the state machine's sweeps take every row they
match, and the run's scheduler sweeps the shared database every second (it would requeue or
publish what a test here is in the middle of ageing, claiming or sweeping itself)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine

from harness.databases import throwaway_database
from shared.settings import to_psycopg_url


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    with throwaway_database("clientes_test_db") as url:
        engine = create_engine(to_psycopg_url(url))
        yield engine
        engine.dispose()

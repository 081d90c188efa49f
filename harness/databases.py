"""Throwaway PostgreSQL databases, migrated by the project's own Alembic, for tests and bench."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from alembic import command
from alembic.config import Config

from harness.servers import ROOT
from shared.settings import to_libpq_url, to_psycopg_url

ADMIN_URL = os.environ.get(
    "TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url_for(name: str) -> str:
    base, _, _ = to_libpq_url(ADMIN_URL).rpartition("/")
    return f"{base}/{name}"


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["database_url"] = to_psycopg_url(database_url)
    config.attributes["configure_logger"] = False
    return config


def create_database(name: str) -> str:
    with psycopg.connect(to_libpq_url(ADMIN_URL), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return database_url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(to_libpq_url(ADMIN_URL), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def throwaway_database(prefix: str, *, migrated: bool = True, keep: bool = False) -> Iterator[str]:
    """A database of its own named `prefix_<random>`, migrated to head, dropped afterwards
    (unless `keep`, to look at it after a failed run)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        if migrated:
            command.upgrade(alembic_config(url), "head")
        yield url
    finally:
        if not keep:
            drop_database(name)

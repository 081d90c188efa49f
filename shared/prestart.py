"""Get a database ready to serve: reachable servers, database created, migrated, seeded if empty.

Run once before the services start: the compose `migrate` service and `make run` both call
`python -m shared.prestart`. When a server is unreachable it says which and how to start it.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

import psycopg
import redis
from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy import text

from shared import api_keys, credentials
from shared.db import sync_engine
from shared.seed.cli import main as seed_data
from shared.settings import Settings, get_settings, to_libpq_url

HOW_TO_START = {
    "PostgreSQL": (
        "start it with `docker compose up -d postgres`, or on Debian "
        "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
    ),
    "Redis": (
        "start it with `docker compose up -d redis`, or "
        '`redis-server --daemonize yes --save "" --appendonly no`'
    ),
}


def unreachable(server: str, url: str, error: Exception) -> SystemExit:
    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or ''}".rstrip(":")
    print(
        f"{server} is not reachable at {where} ({type(error).__name__}: {error}).\n"
        f"  {HOW_TO_START[server]}; or point "
        f"{'DATABASE_URL' if server == 'PostgreSQL' else 'REDIS_URL'} at a running server.",
        file=sys.stderr,
    )
    return SystemExit(2)


def ensure_database(settings: Settings) -> None:
    url = to_libpq_url(settings.database_url)
    try:
        psycopg.connect(url, connect_timeout=5).close()
        return
    except psycopg.OperationalError as error:
        if "does not exist" not in str(error):
            raise unreachable("PostgreSQL", url, error) from error
    name = urlsplit(url).path.lstrip("/")
    maintenance = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    print(f"created database {name}")


def check_redis(settings: Settings) -> None:
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5).ping()
    except redis.RedisError as error:
        raise unreachable("Redis", settings.redis_url, error) from error


def migrate(settings: Settings) -> None:
    config = Config(os.path.join(os.path.dirname(__file__), os.pardir, "alembic.ini"))
    config.attributes["database_url"] = settings.sqlalchemy_url
    command.upgrade(config, "head")


def generate_missing_credentials() -> None:
    """First start: make what the environment (or .env) leaves unset, before settings load."""
    from dotenv import dotenv_values

    given = {**dotenv_values(".env"), **os.environ}
    path = given.get("CREDENTIALS_FILE") or credentials.DEFAULT_FILE
    generated = credentials.ensure(path, {f: given.get(f.upper()) for f in credentials.GENERATORS})
    credentials.announce(generated, path, given.get("ADMIN_USERNAME") or "admin")


def main() -> int:
    generate_missing_credentials()
    settings = get_settings()
    ensure_database(settings)
    check_redis(settings)
    migrate(settings)
    with sync_engine().begin() as connection:
        api_keys.ensure_bootstrap_key(connection, settings.api_bootstrap_key)
    with sync_engine().connect() as connection:
        empty = not connection.execute(text("SELECT EXISTS (SELECT 1 FROM clientes)")).scalar()
    if empty:
        clientes = os.environ.get("SEED_CLIENTES", "50")
        return seed_data(["--clientes", clientes])
    print("database already has customers: not seeding (make seed adds more)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

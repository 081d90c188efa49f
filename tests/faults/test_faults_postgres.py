"""PostgreSQL stopped under a running API: bounded 503s, then recovery without any restart.

The API here talks to a private cluster that this module really stops and starts.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine

from harness import servers
from harness.databases import alembic_config
from shared.settings import to_psycopg_url
from tests.conftest import BOOTSTRAP_KEY
from tests.factories import make_cliente

BUSCAR = "/api/clientes/buscar?tipo_documento=CC&numero_documento=52000111"


@pytest.fixture(scope="module")
def cluster() -> Iterator[servers.PostgresCluster]:
    directory = Path(tempfile.mkdtemp(prefix="clientes-pg-fault-")) / "data"
    cluster = servers.PostgresCluster(directory, servers.free_port()).create()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="module")
def api_on_cluster(
    cluster: servers.PostgresCluster, service_env: dict[str, str]
) -> Iterator[tuple[str, int]]:
    command.upgrade(alembic_config(cluster.url), "head")
    engine = create_engine(to_psycopg_url(cluster.url))
    cliente = make_cliente(engine, numero_documento="52000111")
    engine.dispose()
    process = servers.api_server({**service_env, "DATABASE_URL": cluster.url}, servers.free_port())
    port = process.env["PORT"]
    yield f"http://127.0.0.1:{port}", cliente.id
    process.stop()


def test_lookups_answer_503_while_postgresql_is_down_and_recover_by_themselves(
    cluster: servers.PostgresCluster, api_on_cluster: tuple[str, int]
) -> None:
    url, cliente_id = api_on_cluster
    headers = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        assert http.get(f"/api/clientes/{cliente_id}/").status_code == 200

        cluster.stop()
        try:
            started = time.monotonic()
            ready = http.get("/ready")
            lookup = http.get(f"/api/clientes/{cliente_id}/")
            by_document = http.get(BUSCAR)  # the fast lane (clientes/fast_lane.py)
            elapsed = time.monotonic() - started
            assert ready.status_code == 503
            assert ready.json()["checks"]["postgresql"].startswith("down")
            assert ready.json()["checks"]["redis"] == "ok"
            assert lookup.status_code == 503
            assert lookup.headers["content-type"] == "application/problem+json"
            assert lookup.headers["retry-after"]
            assert by_document.status_code == 503
            assert by_document.headers["content-type"] == "application/problem+json"
            assert by_document.headers["retry-after"]
            assert elapsed < 12, f"answers took {elapsed:.1f}s: they must not hang"
        finally:
            cluster.start()

        # Back up: the pool replaces its dead connections and the key cache reconnects.
        servers.wait_until(
            lambda: http.get(f"/api/clientes/{cliente_id}/").status_code == 200, 20, "recovery"
        )
        servers.wait_until(lambda: http.get(BUSCAR).status_code == 200, 20, "buscar recovery")
        assert http.get("/ready").status_code == 200

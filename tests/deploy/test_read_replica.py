"""READ_DATABASE_URL against a real streaming replica that this test builds (pg_basebackup of a
cluster of its own, a second server on another port): lookups, lists and report queries read
the replica; the jobs a client just created are read on the primary, so it always sees them.
The replica's replay is paused while the primary changes, so which server answered shows."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from alembic import command

from harness import servers
from harness.databases import alembic_config
from harness.servers import PostgresCluster, wait_until
from tests.factories import make_cliente, make_compra
from tests.jobs import settle
from tests.stacks import Stack, own_stack

BOGOTA = ZoneInfo("America/Bogota")


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[PostgresCluster, ...]]:
    # A directory of its own that the postgres user may enter (pytest's tmp_path is root's).
    root = Path(tempfile.mkdtemp(prefix="clientes-pg-replication-"))
    primary = PostgresCluster(root / "primary", servers.free_port()).create()
    try:
        command.upgrade(alembic_config(primary.url), "head")
        replica = primary.create_replica(root / "replica", servers.free_port())
        try:
            yield primary, replica
        finally:
            replica.destroy()
    finally:
        primary.destroy()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(
    clusters: tuple[PostgresCluster, PostgresCluster],
    service_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    primary, replica = clusters
    scratch: Path = tmp_path_factory.mktemp("replica-stack")
    with own_stack(
        service_env, scratch, "replica", database_url=primary.url, READ_DATABASE_URL=replica.url
    ) as stack:
        yield stack


def sql(url: str, statement: str) -> object:
    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(statement).fetchone()
        return None if row is None else row[0]


def caught_up(primary: PostgresCluster, replica: PostgresCluster) -> bool:
    target = sql(primary.url, "SELECT pg_current_wal_lsn()::text")
    return bool(sql(replica.url, f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"))


def test_the_replica_serves_lookups_and_reports_and_the_primary_the_new_job(
    clusters: tuple[PostgresCluster, PostgresCluster], stack: Stack
) -> None:
    primary, replica = clusters
    assert sql(replica.url, "SELECT pg_is_in_recovery()") is True
    wait_until(lambda: caught_up(primary, replica), 30, "replica caught up")
    sql(replica.url, "SELECT pg_wal_replay_pause()")
    try:
        # Written on the primary while the replica stands still.
        cliente = make_cliente(stack.engine)
        day = datetime(1990, 1, 1, tzinfo=BOGOTA) + timedelta(days=uuid.uuid4().int % 1500)
        make_compra(
            stack.engine, cliente, monto="9000000.00", fecha_compra=day + timedelta(hours=1)
        )
        window = {
            "desde": day.date().isoformat(),
            "hasta": (day + timedelta(days=1)).date().isoformat(),
            "formato": "csv",
        }
        with stack.api.client() as http:
            # Lookups and lists: the replica, which has not seen the customer yet.
            assert http.get(f"/api/clientes/{cliente.id}").status_code == 404
            listed = http.get(
                "/api/clientes", params={"numero_documento": cliente.numero_documento}
            )
            assert listed.json()["results"] == []

            # Read-your-own-job: the job is read on the primary the moment it exists.
            created = http.post(f"/api/clientes/{cliente.id}/exportar")
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]
            assert http.get(f"/api/jobs/{job_id}").status_code == 200
            assert job_id in {job["id"] for job in http.get("/api/jobs").json()["results"]}
            # The export reads the primary too (its customer may be a moment old).
            assert settle(http, job_id)["status"] == "succeeded"

            # The report's query reads the replica: the purchase is not there yet.
            report = http.post("/api/reporte-fidelizacion/generar", json=window).json()
            assert http.get(f"/api/jobs/{report['id']}").status_code == 200
            done = settle(http, report["id"])
            assert done["status"] == "succeeded", done
            assert done["result"]["row_count"] == 0
    finally:
        sql(replica.url, "SELECT pg_wal_replay_resume()")

    with stack.api.client() as http:
        wait_until(
            lambda: http.get(f"/api/clientes/{cliente.id}").status_code == 200, 30, "replayed"
        )
        report = http.post("/api/reporte-fidelizacion/generar", json=window).json()
        done = settle(http, report["id"])
        assert done["status"] == "succeeded" and done["result"]["row_count"] == 1, done

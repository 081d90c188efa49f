"""Each attempt writes its own key (issue 12): an attempt that wakes after losing its job cannot
overwrite the file of the attempt that won, and files no succeeded job offers are swept.

The loser is real: a worker process frozen (SIGSTOP) mid-export until the scheduler hands the
job to a new attempt, which wins; then thawed while the jobs table is locked against updates,
so that its heartbeat cannot tell it, before it stores its file, that the job is no longer its
own. The module has its own
stack: it freezes workers and locks tables.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from harness import servers
from shared import jobs, storage
from tests.factories import make_cliente, make_compra
from tests.jobs import compras_locked, download, job_column, only_file_of, settle
from tests.stacks import Stack, own_stack

ORPHAN_GRACE_SECONDS = 30


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("result-keys")


@pytest.fixture(scope="module")
def stack(service_env: dict[str, str], scratch: Path) -> Iterator[Stack]:
    with own_stack(
        service_env, scratch, "result-keys", ORPHAN_GRACE_SECONDS=str(ORPHAN_GRACE_SECONDS)
    ) as stack:
        yield stack


@pytest.fixture
def files(scratch: Path) -> storage.Storage:
    return storage.LocalStorage(scratch / "exports")


def test_an_attempt_that_lost_its_job_cannot_overwrite_the_winners_file(
    stack: Stack, files: storage.Storage
) -> None:
    cliente = make_cliente(stack.engine)
    make_compra(stack.engine, cliente)
    with stack.api.client() as http:
        loser = None
        try:
            with compras_locked(stack.engine):
                # txt: its "generated at" line makes each attempt's file differ.
                path = f"/api/clientes/{cliente.id}/exportar"
                job_id = http.post(path, params={"formato": "txt"}).json()["id"]
                servers.wait_until(lambda: waiting_on_compras(stack.engine), 30, "attempt 1")
                loser = process_of_waiting_query(stack.engine)
                os.kill(loser, signal.SIGSTOP)  # no more heartbeats: its job goes stale
                servers.wait_until(
                    lambda: job_column(stack.engine, job_id, "attempts") == 2, 30, "attempt 2"
                )
            done = settle(http, job_id)  # the purchases free again: attempt 2 wins
            assert done["status"] == "succeeded", done
            winner = job_column(stack.engine, job_id, "storage_key")
            assert winner == jobs.storage_key(job_id, 2, done["result"]["filename"])

            with stack.engine.begin() as connection:
                # Every UPDATE of a job waits, the loser's heartbeat first: the lock is taken
                # before any row is looked at. Nothing tells the loser that it lost, so it
                # renders and stores its file, then its final UPDATE waits too.
                connection.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
                os.kill(loser, signal.SIGCONT)
                servers.wait_until(
                    lambda: final_update_waiting(stack.engine), 30, "the loser's final UPDATE"
                )
        finally:
            if loser is not None:
                os.kill(loser, signal.SIGCONT)
        servers.wait_until(
            lambda: f"job {job_id}: result discarded" in stack.workers.exports.log(),
            30,
            "the loser gives up",
        )
        assert stack.workers.exports.log().count(f"job {job_id} succeeded") == 1
        served = download(http, done)  # its size and SHA-256 still those recorded
        assert cliente.numero_documento in served.text
    only_file_of(files, winner)  # the loser deleted its own file


def test_files_no_succeeded_job_offers_are_swept_once_past_their_grace(
    stack: Stack, files: storage.Storage, tmp_path: Path
) -> None:
    cliente = make_cliente(stack.engine)
    with stack.api.client() as http:
        done = settle(http, http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"])
        assert done["status"] == "succeeded", done
        job_id = done["id"]
        winner = job_column(stack.engine, job_id, "storage_key")
        orphans = [
            jobs.storage_key(job_id, 7, "saved-before-a-crash.csv"),
            f"jobs/{job_id}/7/.unfinished.partial",
            jobs.storage_key(uuid.uuid4(), 1, "of-no-job.csv"),
        ]
        young = jobs.storage_key(job_id, 8, "saved-a-moment-ago.csv")
        source = tmp_path / "content"
        source.write_bytes(b"personal data")
        for key in [*orphans, young]:
            files.save(key, source)
        an_hour_ago = time.time() - 3600
        for key in orphans:
            path = files.local_path(key)
            assert path is not None
            os.utime(path, (an_hour_ago, an_hour_ago))

        servers.wait_until(
            lambda: not any(files.exists(key) for key in orphans),
            ORPHAN_GRACE_SECONDS + 10,
            "the orphan sweep",
        )
        assert files.exists(young), "within its grace: maybe about to be recorded"
        assert files.exists(winner)
        download(http, done)


def waiting_on_compras(engine: Engine) -> bool:
    return client_port_of_waiting_query(engine) is not None


def client_port_of_waiting_query(engine: Engine) -> int | None:
    with engine.connect() as connection:
        port: int | None = connection.execute(
            text(
                "SELECT client_port FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%compras%'"
            )
        ).scalar()
    return port


def process_of_waiting_query(engine: Engine) -> int:
    """The worker process whose connection runs the query waiting on the purchases."""
    port = client_port_of_waiting_query(engine)
    sockets = subprocess.run(
        ["ss", "-tnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"pid=(\d+)", sockets)
    assert found, sockets
    return int(found.group(1))


def final_update_waiting(engine: Engine) -> bool:
    """A worker's `succeed` (the UPDATE that records the file, inside the statement that also
    writes the webhook outbox) waits on a row lock."""
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname ="
                    " current_database() AND wait_event_type = 'Lock'"
                    " AND query ILIKE '%UPDATE jobs%storage_key%')"
                )
            ).scalar()
        )

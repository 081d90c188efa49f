"""Helpers for the job tests: follow a job to its end, read its row, catch it mid-flight."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Engine, text

from harness.servers import wait_until
from shared import api_keys, storage

TERMINAL = {"succeeded", "failed", "canceled", "expired"}


def new_key(engine: Engine, scopes: list[str]) -> str:
    key = api_keys.generate_key()
    with engine.begin() as connection:
        connection.execute(api_keys.insert_key(f"jobs-{'-'.join(scopes)}", scopes, key))
        connection.execute(api_keys.NOTIFY_CHANGED)
    return key.key


def settle(http: httpx.Client, job_id: str, within: float = 60) -> dict[str, Any]:
    """The job once terminal, following it with `?wait=`."""
    deadline = time.monotonic() + within
    while True:
        job: dict[str, Any] = http.get(f"/api/jobs/{job_id}", params={"wait": 10}).json()
        if job["status"] in TERMINAL or time.monotonic() > deadline:
            return job
        if job["status"] not in {"queued", "running"}:
            raise AssertionError(job)


def job_count(engine: Engine, key: str) -> int:
    """How many jobs the API key `key` has made: a test's own key, so that jobs made meanwhile
    by other tests (or the workers' warm-ups) never change the count."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM jobs JOIN api_keys ON api_keys.id = jobs.api_key_id"
                    " WHERE api_keys.key_hash = :hash"
                ),
                {"hash": api_keys.hash_key(key)},
            ).scalar_one()
        )


def wait_until_no_job_in_flight(engine: Engine, within: float = 90) -> None:
    """Every job of the run has ended (none queued, none running), so that counts read from now
    on move only with the caller's own jobs, not with an earlier test's still settling."""

    def quiet() -> bool:
        with engine.connect() as connection:
            return not connection.execute(
                text("SELECT EXISTS (SELECT 1 FROM jobs WHERE status IN ('queued', 'running'))")
            ).scalar_one()

    wait_until(quiet, within, "every job of the run ended")


def job_column(engine: Engine, job_id: str, column: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text(f"SELECT {column} FROM jobs WHERE id = :id"), {"id": job_id}
        ).scalar_one()


@contextmanager
def compras_locked(engine: Engine) -> Iterator[None]:
    """Hold the purchases table so that a job that reads it waits, really running, until the
    block ends: a way to catch a job mid-flight without slowing the code down."""
    with engine.begin() as connection:
        connection.execute(text("LOCK TABLE compras IN ACCESS EXCLUSIVE MODE"))
        yield


def wait_until_running(http: httpx.Client, job_id: str) -> None:
    wait_until(
        lambda: http.get(f"/api/jobs/{job_id}").json()["status"] == "running", 30, "job running"
    )


def facturas_of(engine: Engine, cliente_id: int) -> set[str]:
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT numero_factura FROM compras WHERE cliente_id = :id"),
                {"id": cliente_id},
            ).scalars()
        )


def download(http: httpx.Client, job: dict[str, Any]) -> httpx.Response:
    response = http.get(job["result"]["download_url"])
    assert response.status_code == 200, response.text
    result = job["result"]
    assert response.headers["content-type"] == result["content_type"]
    assert int(response.headers["content-length"]) == len(response.content) == result["size_bytes"]
    assert response.headers["etag"] == f'"{result["sha256"]}"'
    assert hashlib.sha256(response.content).hexdigest() == result["sha256"]
    disposition = response.headers["content-disposition"]
    assert disposition.startswith(f'attachment; filename="{result["filename"]}"')
    assert f"filename*=UTF-8''{result['filename']}" in disposition
    return response


def only_file_of(files: storage.Storage, key: str) -> None:
    """The job's file is the only one in its folder, every attempt's included."""
    path = files.local_path(key)
    assert path is not None and path.is_file()
    job_folder = path.parent.parent  # jobs/<id>/<attempt>/<file>
    assert [p for p in job_folder.rglob("*") if p.is_file()] == [path], "one job, one file"


def query_waiting_on_compras(engine: Engine) -> bool:
    """A job's query is under way, waiting for `compras_locked` to end."""
    with engine.connect() as connection:
        return bool(
            connection.execute(
                # By the lock awaited, not the query's text: pg_stat_activity keeps only the
                # first 1 kB of a query, and the csv report's names its tables after 7 kB.
                text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted"
                    " AND relation = 'compras'::regclass AND pid <> pg_backend_pid()"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database()))"
                )
            ).scalar()
        )

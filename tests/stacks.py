"""A whole stack of its own (database, Redis, API, workers) for tests that break what they share."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine

from harness import servers
from harness.databases import throwaway_database
from shared.settings import to_psycopg_url
from tests.conftest import WORKER_SETTINGS, Api, Workers, log_label
from tests.factories import make_cliente
from tests.jobs import settle


@dataclass(frozen=True)
class Stack:
    redis: servers.Process
    redis_port: int
    engine: Engine
    api: Api
    workers: Workers


@contextlib.contextmanager
def own_stack(
    service_env: dict[str, str],
    scratch: Path,
    label: str,
    database_url: str | None = None,
    **settings: str,
) -> Iterator[Stack]:
    """A database, redis-server, API and workers of their own, with `settings` on top of the
    run's: for a test that stops Redis or sweeps the whole database, which the run's processes
    (and the other tests) must not see. `database_url`: a migrated database to use instead of
    a throwaway one on the machine's server."""
    with contextlib.ExitStack() as cleanup:
        database_url = database_url or cleanup.enter_context(
            throwaway_database(f"clientes_test_{label}")
        )
        engine = create_engine(to_psycopg_url(database_url))
        cleanup.callback(engine.dispose)

        redis_port = servers.free_port()
        redis_process = servers.redis_server(redis_port).start()
        cleanup.callback(redis_process.stop)
        servers.wait_for_redis(redis_port)

        env = {
            **service_env,
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "STORAGE_DIR": str(scratch / "exports"),
            **settings,
        }
        workers = Workers(
            {**env, **WORKER_SETTINGS, **settings},
            str(scratch / "celerybeat-schedule"),
            label=log_label(label),
        )
        cleanup.callback(workers.stop)
        workers.start()  # first: they boot (seconds) while api_server waits for the API
        api_process = servers.api_server(env, servers.free_port())
        cleanup.callback(api_process.stop)
        api = Api(f"http://127.0.0.1:{api_process.env['PORT']}", api_process)
        wait_until_consuming(api, engine, workers)
        yield Stack(redis_process, redis_port, engine, api, workers)


def wait_until_consuming(api: Api, engine: Engine, workers: Workers) -> None:
    """Both workers have run a job and the scheduler has sent a sweep since: every process is
    connected to Redis before the test takes it away."""
    cliente = make_cliente(engine)
    with api.client() as http:
        warm_ups = [
            http.post(f"/api/clientes/{cliente.id}/exportar").json()["id"],
            http.post("/api/reporte-fidelizacion/generar", json={"formato": "csv"}).json()["id"],
        ]
        for job_id in warm_ups:
            warmed = settle(http, job_id, within=120)  # the workers may still be starting
            assert warmed["status"] == "succeeded", warmed
    # Either worker may run a sweep: both consume the sweeps queue.
    logged = [len(worker.log()) for worker in (workers.exports, workers.reports)]
    servers.wait_until(
        lambda: any(
            "jobs.recover" in worker.log()[start:]
            for worker, start in zip((workers.exports, workers.reports), logged, strict=True)
        ),
        10,
        "a sweep from the scheduler",
    )

"""Session fixtures: a throwaway database built by Alembic, a private Redis, the real API."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine

from harness import servers
from harness.databases import throwaway_database
from shared import storage
from shared.settings import Settings, to_psycopg_url

BOOTSTRAP_KEY = "clk_test_bootstrap_" + uuid.uuid4().hex
# The run's own secrets, given to every service process (none of them is generated for tests).
SECRET_KEY = secrets.token_urlsafe(32)
ADMIN_PASSWORD = secrets.token_urlsafe(32)
# pytest-xdist's name for this process (gw0, gw1, …; empty without -n). Each xdist process has
# a session of its own (database, Redis, API, workers): the logs of its processes, which tests
# read, carry this name so that two sessions never write to one file.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def log_label(name: str = "") -> str:
    """The suffix of a set of workers' log files: `name` (another stack's) and the xdist process."""
    return "".join(f"-{part}" for part in (name, XDIST_WORKER) if part)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    keep = bool(os.environ.get("KEEP_TEST_DATABASE"))
    with throwaway_database("clientes_test", keep=keep) as url:
        yield url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(to_psycopg_url(database_url))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    port = servers.free_port()
    process = servers.redis_server(port).start()
    servers.wait_for_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    process.stop()


@pytest.fixture(scope="session")
def service_env(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """The environment every service process of this run gets: what compose sets, pointed here."""
    return {
        **os.environ,
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "API_BOOTSTRAP_KEY": BOOTSTRAP_KEY,
        "SECRET_KEY": SECRET_KEY,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "STORAGE_BACKEND": "local",
        "STORAGE_DIR": str(tmp_path_factory.mktemp("exports")),
        "LOG_LEVEL": "INFO",
        # The test receivers listen on 127.0.0.1 (one test checks the refusal without this).
        "WEBHOOK_ALLOW_PRIVATE": "true",
        # The bootstrap key makes the jobs of most tests, some left queued for a while: the
        # per-key cap has its own API in tests/api/test_abuse_limits.py.
        "JOB_MAX_ACTIVE_PER_KEY": "100000",
        # A browser front end's origin (tests/api/test_cors.py); any other gets no CORS headers.
        "CORS_ORIGINS": "http://localhost:3000, https://sac.example",
    }


@dataclass(frozen=True)
class Api:
    url: str
    process: servers.Process

    def client(self, key: str | None = BOOTSTRAP_KEY, **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=40, **kwargs)  # type: ignore[arg-type]


@contextmanager
def own_api(service_env: dict[str, str], **settings: str) -> Iterator[Api]:
    """An API process of its own (the run's database and Redis) with `settings` on top."""
    process = servers.api_server({**service_env, **settings}, servers.free_port())
    try:
        yield Api(f"http://127.0.0.1:{process.env['PORT']}", process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def api(service_env: dict[str, str]) -> Iterator[Api]:
    with own_api(service_env) as api:
        yield api


@pytest.fixture
def client(api: Api) -> Iterator[httpx.Client]:
    """An HTTP client holding the bootstrap key (every scope)."""
    with api.client() as http:
        yield http


@pytest.fixture
def anonymous(api: Api) -> Iterator[httpx.Client]:
    with api.client(key=None) as http:
        yield http


def assert_problem(
    response: httpx.Response, status: int, *, field: str | None = None
) -> dict[str, object]:
    """An RFC 9457 answer with this status; with `field`, its `errors` name that field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert body["type"] and body["title"] and body["detail"]
    if field is not None:
        errors = body["errors"]
        assert isinstance(errors, list)
        assert field in [error["field"] for error in errors], body
    return body


# Workers and scheduler: the Procfile's commands, with thresholds small enough for tests.
WORKER_SETTINGS = {
    "JOB_STALE_AFTER_SECONDS": "5",
    "JOB_REPUBLISH_AFTER_SECONDS": "3",
    "SCHEDULER_INTERVAL_SECONDS": "1",
    # Webhook retries within seconds, given up after some 10 s of failures.
    "WEBHOOK_RETRY_SECONDS": "0.5,1,1,2,2,3",
}


class Workers:
    """The run's export, report, bulk and webhook workers and the scheduler. A fault test may
    kill or stop any of them; `start()` starts again whichever is not running."""

    def __init__(self, env: dict[str, str], schedule_file: str, label: str) -> None:
        # `label` (from `log_label`) names the logs of this set apart from any other's.
        self.exports, self.exports_metrics = self._worker("worker-exports", label, env)
        self.reports, self.reports_metrics = self._worker("worker-reports", label, env)
        self.bulk, self.bulk_metrics = self._worker("worker-bulk", label, env)
        self.webhooks, self.webhooks_metrics = self._worker("worker-webhooks", label, env)
        scheduler = servers.replace_options(
            servers.procfile_argv("scheduler"), {"--schedule": schedule_file}
        )
        self.scheduler = servers.Process(f"scheduler{label}", scheduler, env)
        self.all = (self.exports, self.reports, self.bulk, self.webhooks, self.scheduler)

    @staticmethod
    def _worker(name: str, label: str, env: dict[str, str]) -> tuple[servers.Process, str]:
        """A Procfile worker serving its metrics on a port of its own; and their URL."""
        port = str(servers.free_port())
        argv = servers.replace_options(servers.procfile_argv(name), {"--metrics-port": port})
        return servers.Process(f"{name}{label}", argv, env), f"http://127.0.0.1:{port}/metrics"

    def start(self) -> None:
        for process in self.all:
            if not process.alive():
                process.start()

    def stop(self) -> None:
        for process in self.all:  # all at once: each warm shutdown takes seconds
            process.signal(signal.SIGTERM)
        for process in self.all:
            process.stop()


@pytest.fixture(scope="session")
def workers(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Workers]:
    schedule = tmp_path_factory.mktemp("beat") / "celerybeat-schedule"
    running = Workers({**service_env, **WORKER_SETTINGS}, str(schedule), log_label())
    running.start()
    yield running
    running.stop()


@pytest.fixture
def http(workers: Workers, client: httpx.Client) -> httpx.Client:
    """The bootstrap client, with the workers and the scheduler running. (`workers` first: the
    first test to ask starts them, and they boot while the API fixture waits for the API.)"""
    workers.start()
    return client


@pytest.fixture
def fault_workers(workers: Workers) -> Iterator[Workers]:
    """The run's workers, restarted after the test whatever it did to them."""
    workers.start()
    yield workers
    workers.start()


@pytest.fixture(scope="session")
def files(service_env: dict[str, str]) -> storage.Storage:
    """The storage the workers write to, seen through its own interface."""
    return storage.get_storage(
        Settings(storage_backend="local", storage_dir=service_env["STORAGE_DIR"])
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto_server) in its own process."""
    port = servers.free_port()
    moto_server = str(Path(sys.executable).parent / "moto_server")
    process = servers.Process(
        f"moto-{port}", [moto_server, "-H", "127.0.0.1", "-p", str(port)], dict(os.environ)
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        servers.wait_until(lambda: httpx.get(f"{url}/moto-api/").status_code == 200, 30, "moto")
        yield url
    finally:
        process.stop()

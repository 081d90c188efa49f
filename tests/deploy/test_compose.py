"""docker-compose.yml stays honest. Read as text (every run): its app services run Procfile
processes by name, so `make run`, the tests and the containers run one set of commands; its
wiring is complete and safe by default. Run for real (marker `compose`, `make test-compose`):
built from this checkout, started with nothing configured, used through the published port as
a person would, a worker restarted mid-job, the API scaled behind the proxy with one replica
stopped under a stream of requests, and `down`/`up` keeping the data."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.servers import ROOT, free_port, procfile, wait_until
from tests.jobs import download, settle

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = [name for name, service in SERVICES.items() if "build" in service]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
PRESTART = ["python", "-m", "shared.prestart"]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_every_procfile_process_is_a_compose_service_that_runs_it_by_name() -> None:
    for name in procfile():
        assert name in SERVICES, f"Procfile process {name} missing from docker-compose.yml"
        assert command_of(SERVICES[name]) == [name], name


def test_every_app_service_runs_a_procfile_process_or_the_prestart() -> None:
    known = [[name] for name in procfile()] + [PRESTART]
    for name in APP_SERVICES:
        assert command_of(SERVICES[name]) in known, name


def test_the_entrypoint_runs_a_procfile_line_by_name_and_anything_else_as_given(
    tmp_path: Path,
) -> None:
    script = tmp_path / "entrypoint.sh"
    script.write_text(
        (ROOT / "docker" / "entrypoint.sh")
        .read_text()
        .replace("/app/Procfile", str(ROOT / "Procfile"))
    )
    # A `sh` that shows what it was asked to run, found before the real one.
    (tmp_path / "sh").write_text('#!/bin/bash\nprintf "%s\\n" "$@"\n')
    (tmp_path / "sh").chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}

    def entrypoint(*args: str) -> str:
        return subprocess.run(
            ["/bin/sh", str(script), *args], capture_output=True, text=True, env=env, check=True
        ).stdout

    flag, command = entrypoint("worker-exports").splitlines()
    assert flag == "-c"
    assert shlex.split(command.removeprefix("exec ")) == procfile()["worker-exports"]
    assert entrypoint("echo", "as", "given").strip() == "as given"


def test_make_run_runs_the_prestart_and_the_procfile() -> None:
    run = (ROOT / "scripts" / "run.sh").read_text()
    assert "python -m shared.prestart" in run
    assert "done < Procfile" in run


# The one-shot migration and beat (a client, not a server) are the only services without one.
@pytest.mark.parametrize("name", [n for n in SERVICES if n not in {"migrate", "scheduler"}])
def test_servers_have_healthchecks(name: str) -> None:
    assert SERVICES[name]["healthcheck"]["test"]


def test_app_services_wait_for_healthy_servers_and_the_migration() -> None:
    for name in APP_SERVICES:
        depends = SERVICES[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        if name != "migrate":
            assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert SERVICES["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"


def test_profiles_keep_flower_and_minio_optional() -> None:
    assert SERVICES["flower"]["profiles"] == ["flower"]
    assert SERVICES["minio"]["profiles"] == ["s3"]


def test_one_dockerfile_with_a_base_stage_and_api_and_worker_targets() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\w+)", text, re.MULTILINE)
    assert [stage for _, stage in stages] == ["build", "base", "worker", "api"]
    assert dict((stage, image) for image, stage in stages)["api"] == "base"
    assert dict((stage, image) for image, stage in stages)["worker"] == "base"
    for name in APP_SERVICES:
        build = SERVICES[name]["build"]
        assert build["dockerfile"] == "docker/Dockerfile", name
        assert build["target"] == ("worker" if name.startswith(("worker", "sched")) else "api")
    assert not (ROOT / "services" / "query_api" / "Dockerfile").exists()
    assert not (ROOT / "services" / "export_worker" / "Dockerfile").exists()


def test_images_hold_the_runtime_lock_only_and_run_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    assert "requirements.lock" in text and "requirements-dev.lock" not in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}
    runtime = (ROOT / "requirements.lock").read_text()
    for tool in ("pytest", "mypy", "playwright", "moto", "ruff", "import-linter"):
        assert f"\n{tool}==" not in runtime, tool
    assert "\nimport-linter==" in (ROOT / "requirements-dev.lock").read_text()
    for lock in ("requirements.lock", "requirements-dev.lock"):
        pins = (ROOT / lock).read_text()
        assert "--hash=sha256:" in pins and "://" not in pins, lock


def test_no_published_port_listens_beyond_loopback_unless_asked_and_no_default_secret() -> None:
    published = [
        (name, port) for name, service in SERVICES.items() for port in service.get("ports", [])
    ]
    assert {name for name, _ in published} == {"proxy", "flower", "minio"}
    for name, port in published:
        assert port.startswith("${BIND_ADDRESS:-127.0.0.1}:"), (name, port)
    text = (ROOT / "docker-compose.yml").read_text()
    for known in ("change-me", "clk_compose", "minioadmin"):
        assert known not in text, known
    app_env = SERVICES["api"]["environment"]
    for variable in ("SECRET_KEY", "ADMIN_PASSWORD", "API_BOOTSTRAP_KEY"):
        assert app_env[variable] == f"${{{variable}:-}}", variable
    assert app_env["ENVIRONMENT"] == "${ENVIRONMENT:-production}"


def test_env_example_documents_every_variable_compose_passes() -> None:
    example = (ROOT / ".env.example").read_text()
    app_env = SERVICES["api"]["environment"]
    for variable in app_env:
        if variable not in {
            "PORT",
            "WEB_CONCURRENCY",
            "S3_ENDPOINT_URL",
            "S3_BUCKET",
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
        }:
            assert re.search(rf"^#?\s*{variable}=", example, re.MULTILINE), variable


# The stack for real ------------------------------------------------------------------------


LOCK_HELD = (
    "SELECT count(*) FROM pg_locks WHERE relation = 'compras'::regclass "
    "AND mode = 'AccessExclusiveLock' AND granted"
)
# By the lock awaited: pg_stat_activity keeps only a query's first 1 kB (the csv report's is 7 kB).
WAITING_ON_COMPRAS = (
    "SELECT least(count(*), 1) FROM pg_locks WHERE relation = 'compras'::regclass AND NOT granted"
)


@dataclass
class Stack:
    project: str
    port: int
    key: str = ""
    env: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(
            ["docker", "compose", "-p", self.project, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"docker compose {' '.join(args)}:\n{done.stdout}\n{done.stderr}")
        return done.stdout + done.stderr

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=40,
        )

    def psql(self, query: str) -> str:
        """One query's answer, through psql in the postgres container."""
        return (
            self.compose(
                "exec", "-T", "postgres", "psql", "-U", "clientes", "-d", "clientes", "-Atc", query
            )
            .strip()
            .splitlines()[-1]
        )

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).split()


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    port = free_port()
    stack = Stack(f"clientes-test-{uuid.uuid4().hex[:8]}", port)
    # Nothing configured but the port: no secret, no key, no password.
    stack.env = {
        name: value
        for name, value in os.environ.items()
        if not re.match(
            r"(SECRET_KEY|ADMIN_|API_BOOTSTRAP|DATABASE_URL|REDIS_URL|ENVIRONMENT)", name
        )
    } | {"PORT": str(port)}
    try:
        stack.compose("up", "-d", "--build", "--wait", "--wait-timeout", "300")
        printed = re.search(r"API key \(every scope\): (clk_\S+)", stack.compose("logs", "migrate"))
        assert printed, "the first start prints the generated API key"
        stack.key = printed.group(1)
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", check=False, timeout=60)
        (ROOT / "test-output").mkdir(exist_ok=True)
        (ROOT / "test-output" / f"{stack.project}.log").write_text(logs)
        stack.compose("down", "-v", "--remove-orphans", check=False, timeout=300)


@pytest.mark.compose
def test_both_compose_versions_accept_the_file_unchanged() -> None:
    for cli in (["docker", "compose"], ["docker-compose"]):
        done = subprocess.run(
            [*cli, "-f", "docker-compose.yml", "config", "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"{cli}: {done.stderr}"


@pytest.mark.compose
def test_first_start_prints_the_generated_credentials_once(stack: Stack) -> None:
    log = stack.compose("logs", "--no-color", "migrate")
    assert log.count("Generated credentials") == 1 and log.count(stack.key) == 1
    again = stack.compose("run", "--rm", "migrate", "show-credentials")
    assert stack.key in again
    admin = re.search(r"Admin \(/admin/\):\s+admin / (\S+)", again)
    assert admin and len(admin.group(1)) >= 32
    with stack.http() as http:
        assert http.get("/api/tipos-documento/").status_code == 200


@pytest.mark.compose
def test_only_the_proxy_publishes_a_port_and_only_on_loopback(stack: Stack) -> None:
    assert stack.compose("port", "proxy", "8000").strip() == f"127.0.0.1:{stack.port}"
    for service in ("api", "postgres", "redis", "worker-exports"):
        assert not stack.compose("port", service, "8000", check=False).strip().startswith("0.0")
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.port}") as anonymous:
        assert anonymous.get("/api/tipos-documento/").status_code == 401


@pytest.mark.compose
def test_a_lookup_an_export_and_a_report_through_the_published_port(stack: Stack) -> None:
    with stack.http() as http:
        cliente = http.get("/api/clientes", params={"limit": 1}).json()["results"][0]
        found = http.get(
            "/api/clientes/buscar/",
            params={
                "tipo_documento": cliente["tipo_documento"]["codigo"],
                "numero_documento": cliente["numero_documento"],
            },
        )
        assert found.status_code == 200 and found.json()["id"] == cliente["id"]

        export = http.post(f"/api/clientes/{cliente['id']}/exportar", json={"formato": "csv"})
        assert export.status_code == 202, export.text
        done = settle(http, export.json()["id"])
        assert done["status"] == "succeeded", done
        assert cliente["numero_documento"] in download(http, done).text

        today = date.today()
        report = http.post(
            "/api/reporte-fidelizacion/generar",
            json={"desde": (today - timedelta(days=90)).isoformat(), "hasta": today.isoformat()},
        )
        assert report.status_code == 202, report.text
        done = settle(http, report.json()["id"])
        assert done["status"] == "succeeded", done
        download(http, done)


@pytest.mark.compose
def test_a_worker_restarted_mid_job_hands_it_back_at_once(stack: Stack) -> None:
    """The report's query waits on a lock that psql holds; `docker compose restart` of its worker
    returns within seconds (not after the job, nor the grace period) and the job runs again."""
    holder = subprocess.Popen(
        ["docker", "compose", "-p", stack.project, "exec", "-T", "postgres", "psql",
         "-U", "clientes", "-d", "clientes", "-c",
         "BEGIN; LOCK TABLE compras IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);"],
        cwd=ROOT, env=stack.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: stack.psql(LOCK_HELD) == "1", 60, "compras locked")
        with stack.http() as http:
            today = date.today()
            job_id = http.post(
                "/api/reporte-fidelizacion/generar",
                json={
                    "desde": (today - timedelta(days=60)).isoformat(),
                    "hasta": today.isoformat(),
                },
            ).json()["id"]
            wait_until(lambda: stack.psql(WAITING_ON_COMPRAS) == "1", 60, "report query waiting")
            assert http.get(f"/api/jobs/{job_id}").json()["status"] == "running"
            started = time.monotonic()
            stack.compose("restart", "worker-reports", timeout=120)
            took = time.monotonic() - started
            assert took < 25, f"restart waited {took:.0f}s: the job was not handed back"
            log = stack.compose("logs", "--no-color", "worker-reports")
            assert f"job {job_id}: handed back to the queue" in log
    finally:
        stack.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()")  # fmt: skip
        holder.wait(60)
    with stack.http() as http:
        done = settle(http, job_id, within=120)
        assert done["status"] == "succeeded", done
    assert stack.compose("logs", "--no-color", "worker-reports").count(f"job {job_id} claimed") == 2


@pytest.mark.compose
def test_scaled_stack_survives_an_api_replica_stopped_under_load(stack: Stack) -> None:
    stack.compose(
        "up", "-d", "--no-recreate", "--wait", "--wait-timeout", "300",
        "--scale", "api=3", "--scale", "worker-exports=3",
    )  # fmt: skip
    assert len(stack.containers("api")) == 3 and len(stack.containers("worker-exports")) == 3
    stack.compose("restart", "proxy")  # nginx resolves the replicas when it starts
    with stack.http() as http:
        wait_until(lambda: http.get("/api/tipos-documento/").status_code == 200, 60, "proxy")
        answers: list[int] = []
        stop = threading.Event()

        def stream() -> None:
            with stack.http() as client:
                while not stop.is_set() and len(answers) < 5000:
                    try:
                        answers.append(client.get("/api/tipos-documento/").status_code)
                    except httpx.HTTPError:
                        answers.append(0)

        threads = [threading.Thread(target=stream) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(3)
        before = len(answers)
        subprocess.run(["docker", "stop", stack.containers("api")[0]], check=True, timeout=60)
        time.sleep(5)
        stop.set()
        for thread in threads:
            thread.join(60)
        assert len(answers) - before > 20, "requests kept flowing after the stop"
        assert set(answers) == {200}, {code: answers.count(code) for code in set(answers)}
        # Exports spread over the three export workers still complete.
        cliente_id = http.get("/api/clientes", params={"limit": 1}).json()["results"][0]["id"]
        ids = [http.post(f"/api/clientes/{cliente_id}/exportar").json()["id"] for _ in range(6)]
        assert all(settle(http, job_id)["status"] == "succeeded" for job_id in ids)


@pytest.mark.compose
def test_down_and_up_keep_the_data_and_the_credentials(stack: Stack) -> None:
    with stack.http() as http:
        jobs_before: Any = http.get("/api/jobs", params={"limit": 100}).json()["results"]
    assert jobs_before
    stack.compose("down", timeout=300)
    stack.compose("up", "-d", "--wait", "--wait-timeout", "300")
    assert "Generated credentials" not in stack.compose("logs", "--no-color", "migrate")
    with stack.http() as http:
        wait_until(lambda: http.get("/api/tipos-documento/").status_code == 200, 60, "API")
        jobs_after = http.get("/api/jobs", params={"limit": 100}).json()["results"]
        assert {job["id"] for job in jobs_after} == {job["id"] for job in jobs_before}
        succeeded = next(job for job in jobs_after if job["status"] == "succeeded")
        download(http, http.get(f"/api/jobs/{succeeded['id']}").json())

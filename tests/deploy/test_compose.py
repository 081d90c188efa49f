"""docker-compose.yml stays honest: no Docker engine here, so its commands must be the ones that
`make run` (the Procfile) and this test suite really run, and its wiring must be complete."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.servers import ROOT, procfile

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP_SERVICES = [name for name, service in SERVICES.items() if "build" in service]
PRESTART = ["python", "-m", "shared.prestart"]


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def test_every_procfile_process_is_a_compose_service_with_the_same_command() -> None:
    for name, argv in procfile().items():
        assert name in SERVICES, f"Procfile process {name} missing from docker-compose.yml"
        assert command_of(SERVICES[name]) == argv, name


def test_every_app_service_runs_a_procfile_command_or_the_prestart() -> None:
    known = [*procfile().values(), PRESTART]
    for name in APP_SERVICES:
        assert command_of(SERVICES[name]) in known, name


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
        if name == "migrate":
            assert depends["postgres"]["condition"] == "service_healthy"
            continue
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_profiles_keep_flower_and_minio_optional() -> None:
    assert SERVICES["flower"]["profiles"] == ["flower"]
    assert SERVICES["minio"]["profiles"] == ["s3"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_images_run_as_a_non_root_user(name: str) -> None:
    dockerfile = ROOT / SERVICES[name]["build"]["dockerfile"]
    users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}, dockerfile


@pytest.mark.parametrize("name", APP_SERVICES)
def test_dockerfiles_copy_what_the_command_needs(name: str) -> None:
    text = Path(ROOT / SERVICES[name]["build"]["dockerfile"]).read_text()
    for needed in ("requirements.lock", "shared", "services", "alembic.ini"):
        assert needed in text, f"{name}: {needed}"


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

"""deploy/kubernetes/ holds valid manifests for the same processes as docker-compose.yml: each
resource validated against the Kubernetes API schema (kubernetes-validate, strict: no unknown
field), and the shape the deployment needs checked here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from harness.servers import ROOT, procfile

MANIFESTS = ROOT / "deploy" / "kubernetes"
KUSTOMIZATION: dict[str, Any] = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
FILES = sorted(path for path in MANIFESTS.glob("*.yaml") if path.name != "kustomization.yaml")
RESOURCES: list[dict[str, Any]] = [
    document
    for path in FILES
    for document in yaml.safe_load_all(path.read_text())
    if document is not None
]
PRESTART = ["python", "-m", "shared.prestart"]
# The oldest Kubernetes still commonly run, and the newest the validator knows.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def named(kind: str, name: str) -> dict[str, Any]:
    matches = [r for r in RESOURCES if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}"
    return matches[0]


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def container(resource: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(resource)["containers"]
    assert len(containers) == 1
    only: dict[str, Any] = containers[0]
    return only


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "resource", RESOURCES, ids=[f"{r['kind']}/{r['metadata']['name']}" for r in RESOURCES]
)
def test_every_resource_is_valid_against_the_kubernetes_schema(
    resource: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    assert sorted(KUSTOMIZATION["resources"]) == sorted(path.name for path in FILES)
    assert {image["name"] for image in KUSTOMIZATION["images"]} == {
        "clientes-api",
        "clientes-worker",
    }


def test_the_api_is_ready_on_ready_and_scaled_by_an_hpa() -> None:
    api = named("Deployment", "clientes-api")
    main = container(api)
    assert main["args"] == ["api"] and main["image"] == "clientes-api"
    assert main["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/health"
    assert main["resources"]["requests"]["cpu"], "the HPA's utilisation needs a CPU request"
    assert api["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = named("HorizontalPodAutoscaler", "clientes-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "clientes-api",
    }
    assert 1 < hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    service = named("Service", "clientes-api")
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == main["ports"][0]["name"]


@pytest.mark.parametrize("process", [name for name in procfile() if name.startswith("worker-")])
def test_one_deployment_per_queue_runs_its_procfile_process(process: str) -> None:
    worker = named("Deployment", f"clientes-{process}")
    main = container(worker)
    assert main["args"] == [process], "the Procfile line, by name (docker/entrypoint.sh)"
    assert main["image"] == "clientes-worker"
    metrics_port = procfile()[process][procfile()[process].index("--metrics-port") + 1]
    assert main["ports"][0]["containerPort"] == int(metrics_port)
    assert main["livenessProbe"]["httpGet"]["port"] == "metrics"


def test_beat_runs_as_a_single_replica_replaced_not_rolled() -> None:
    scheduler = named("Deployment", "clientes-scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"] == {"type": "Recreate"}
    assert container(scheduler)["args"] == ["scheduler"]


def test_the_migration_is_a_job_running_the_prestart() -> None:
    job = named("Job", "clientes-migrate")
    assert container(job)["args"] == PRESTART
    assert container(job)["image"] == "clientes-api"
    assert pod_spec(job)["restartPolicy"] in {"OnFailure", "Never"}


def test_every_procfile_process_has_a_deployment() -> None:
    deployments = {container(r)["args"][0] for r in RESOURCES if r["kind"] == "Deployment"}
    assert deployments == set(procfile())


def test_pods_run_as_non_root_and_read_settings_from_the_configmap_and_secret() -> None:
    configmap = named("ConfigMap", "clientes-config")
    assert configmap["data"]["ENVIRONMENT"] == "production"
    for secret in ("SECRET_KEY", "ADMIN_PASSWORD", "API_BOOTSTRAP_KEY", "DATABASE_URL"):
        assert secret not in configmap["data"], "secrets belong in the Secret, not in git"
    for resource in RESOURCES:
        if resource["kind"] not in {"Deployment", "Job"}:
            continue
        assert pod_spec(resource)["securityContext"]["runAsNonRoot"] is True
        sources = container(resource)["envFrom"]
        assert {"configMapRef": {"name": "clientes-config"}} in sources
        assert {"secretRef": {"name": "clientes-secrets"}} in sources
        assert container(resource)["resources"]["limits"]["memory"]


def test_the_manifests_are_where_the_readme_says(tmp_path: Path) -> None:
    readme = (ROOT / "deploy" / "README.md").read_text()
    assert "kubectl apply -k deploy/kubernetes" in readme
    assert "Capacity" in readme

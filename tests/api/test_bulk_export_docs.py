"""/docs for bulk exports: the examples of `POST /api/exportaciones` are answers the API really
gives, and bodies it really accepts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from services.query_api.jobs.schemas import Job
from tests.conftest import Api, assert_problem
from tests.jobs import new_key


def _operation(anonymous: httpx.Client) -> dict[str, Any]:
    operation: dict[str, Any] = anonymous.get("/openapi.json").json()["paths"][
        "/api/exportaciones"
    ]["post"]
    return operation


def _examples(content: dict[str, Any], media_type: str) -> dict[str, Any]:
    examples: dict[str, Any] = content[media_type]["examples"]
    assert examples, media_type
    return {name: example["value"] for name, example in examples.items()}


# The bulk worker drops the canceled jobs' messages: none is left in a queue for later tests.
@pytest.mark.usefixtures("workers")
def test_the_request_examples_are_accepted(
    anonymous: httpx.Client, api: Api, engine: Engine
) -> None:
    bodies = _examples(_operation(anonymous)["requestBody"]["content"], "application/json")
    assert {"documentos", "filtros"} <= bodies.keys()
    # A key of its own, and each job canceled at once: the examples are not exported for real.
    with api.client(new_key(engine, ["read", "export"])) as http:
        for name, body in bodies.items():
            created = http.post("/api/exportaciones/", json=body)
            assert created.status_code == 202, (name, created.text)
            assert created.json()["type"] == "exportacion_masiva"
            assert http.delete(f"/api/jobs/{created.json()['id']}").status_code == 204


def test_the_response_examples_are_jobs_and_problems_the_api_gives(
    anonymous: httpx.Client, client: httpx.Client
) -> None:
    responses = _operation(anonymous)["responses"]
    accepted = _examples(responses["202"]["content"], "application/json")
    done = _examples(responses["303"]["content"], "application/json")
    assert {job["status"] for job in accepted.values()} == {"queued", "running"}
    assert [job["status"] for job in done.values()] == ["succeeded"]
    for job in (*accepted.values(), *done.values()):
        Job.model_validate(job)
    (succeeded,) = done.values()
    assert succeeded["result"]["not_found"] >= 1 and succeeded["rows_written"] > 0

    (invalid,) = _examples(responses["422"]["content"], "application/problem+json").values()
    bad = {
        "formato": "pdf",
        "filtro": {"documentos": [{"tipo_documento": "XX", "numero_documento": "1"}]},
    }
    real = assert_problem(client.post("/api/exportaciones/", json=bad), 422)
    assert {key: real[key] for key in ("type", "title", "status")} == {
        key: invalid[key] for key in ("type", "title", "status")
    }
    real_errors = real["errors"]
    assert isinstance(real_errors, list)
    assert [e["field"] for e in invalid["errors"]] == [e["field"] for e in real_errors]

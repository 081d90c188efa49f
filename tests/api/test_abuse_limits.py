"""SPEC §12 through the real API: quotas, bounds and answers that hold up under abuse."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import Engine, text

from shared import api_keys
from tests.conftest import BOOTSTRAP_KEY, Api, assert_problem


def key_id_of(engine: Engine, key: str) -> uuid.UUID:
    with engine.connect() as connection:
        found: uuid.UUID = connection.execute(
            text("SELECT id FROM api_keys WHERE key_hash = :h"), {"h": api_keys.hash_key(key)}
        ).scalar_one()
    return found


def test_a_500_carries_the_request_id_and_logs_it(
    api: Api, client: httpx.Client, engine: Engine
) -> None:
    # A succeeded job whose stored result lacks its fields: the job document cannot be built,
    # an error no handler knows, which Starlette's outermost middleware used to answer.
    with engine.begin() as connection:
        job_id = connection.execute(
            text(
                "INSERT INTO jobs (id, type, status, params, api_key_id, result)"
                " VALUES (gen_random_uuid(), 'export_cliente', 'succeeded', '{}', :key, '{}')"
                " RETURNING id"
            ),
            {"key": key_id_of(engine, BOOTSTRAP_KEY)},
        ).scalar_one()
    request_id = f"five-hundred-{uuid.uuid4().hex[:8]}"
    response = client.get(f"/api/jobs/{job_id}", headers={"X-Request-ID": request_id})
    assert_problem(response, 500)
    assert response.headers["x-request-id"] == request_id
    assert response.json()["detail"] == "Unexpected error."
    logged = [line for line in api.process.log().splitlines() if "unhandled error" in line]
    assert any(request_id in line for line in logged), "the traceback is logged with its id"

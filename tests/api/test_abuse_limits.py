"""SPEC §12 through the real API: quotas, bounds and answers that hold up under abuse."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import Engine, text

from shared import api_keys
from shared.settings import Settings
from tests.conftest import Api, assert_problem, own_api
from tests.jobs import compras_locked, new_key


def key_id_of(engine: Engine, key: str) -> uuid.UUID:
    with engine.connect() as connection:
        found: uuid.UUID = connection.execute(
            text("SELECT id FROM api_keys WHERE key_hash = :h"), {"h": api_keys.hash_key(key)}
        ).scalar_one()
    return found


def test_a_500_carries_the_request_id_and_logs_it(api: Api, engine: Engine) -> None:
    # A succeeded job whose stored result lacks its fields: the job document cannot be built,
    # an error no handler knows, which Starlette's outermost middleware used to answer. It
    # belongs to a key of its own, so no other test's job list meets it.
    key = new_key(engine, ["export"])
    with engine.begin() as connection:
        job_id = connection.execute(
            text(
                "INSERT INTO jobs (id, type, status, params, api_key_id, result)"
                " VALUES (gen_random_uuid(), 'export_cliente', 'succeeded', '{}', :key, '{}')"
                " RETURNING id"
            ),
            {"key": key_id_of(engine, key)},
        ).scalar_one()
    request_id = f"five-hundred-{uuid.uuid4().hex[:8]}"
    with api.client(key) as http:
        response = http.get(f"/api/jobs/{job_id}", headers={"X-Request-ID": request_id})
    assert_problem(response, 500)
    assert response.headers["x-request-id"] == request_id
    assert response.json()["detail"] == "Unexpected error."
    logged = [line for line in api.process.log().splitlines() if "unhandled error" in line]
    assert any(request_id in line for line in logged), "the traceback is logged with its id"


ACTIVE_JOBS_CAP = 5


@pytest.fixture(scope="module")
def capped_api(service_env: dict[str, str]) -> Iterator[Api]:
    """An API of its own with a small cap on active jobs (the run's lifts it)."""
    with own_api(service_env, JOB_MAX_ACTIVE_PER_KEY=str(ACTIVE_JOBS_CAP)) as api:
        yield api


def test_active_jobs_per_key_are_capped_even_under_concurrent_requests(
    capped_api: Api, engine: Engine
) -> None:
    api, cap = capped_api, ACTIVE_JOBS_CAP
    key = new_key(engine, ["export"])
    # Purchases locked: a worker that takes one of these reports stays running, so every job
    # made stays active for the whole test whether or not the run's workers are up.
    with compras_locked(engine), api.client(key) as http:

        def create(_: int) -> httpx.Response:
            return http.post("/api/reporte-fidelizacion/generar", json={"formato": "csv"})

        with ThreadPoolExecutor(max_workers=cap * 5) as pool:
            answers = list(pool.map(create, range(cap * 5)))
        accepted = [a for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code != 202]
        assert len(accepted) == cap, [a.status_code for a in answers]
        for answer in refused:
            body = assert_problem(answer, 429)
            assert body["limit"] == cap
            assert int(answer.headers["retry-after"]) > 0
        with engine.connect() as connection:
            made = connection.execute(
                text("SELECT count(*) FROM jobs WHERE api_key_id = :k"),
                {"k": key_id_of(engine, key)},
            ).scalar_one()
        assert made == cap, "a refused request makes no job"
        # One ended (canceled) job makes room for exactly one more.
        assert http.delete(f"/api/jobs/{accepted[0].json()['id']}").status_code == 204
        assert create(0).status_code == 202
        assert create(0).status_code == 429
        for answer in accepted:  # leave the run's workers nothing to do
            http.delete(f"/api/jobs/{answer.json()['id']}")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"hasta": "0001-01-05"}, "hasta"),  # the default desde, 30 days earlier, overflowed
        ({"desde": "0001-01-01T00:00:00+05:00", "hasta": "2026-01-01"}, "desde"),
        ({"desde": "9999-12-01", "hasta": "9999-12-31T23:59:59-12:00"}, "hasta"),
        ({"desde": "2025-01-01", "hasta": "2026-01-03"}, "desde"),  # 367 days
        ({"hasta": "2026-01-03T00:00:00-05:00", "desde": "2024-12-31T23:59:59Z"}, "desde"),
    ],
)
def test_report_dates_out_of_range_or_too_far_apart_are_422(
    client: httpx.Client, body: dict[str, str], field: str
) -> None:
    response = client.post("/api/reporte-fidelizacion/generar", json=body)
    assert_problem(response, 422, field=field)


def test_report_window_of_exactly_report_max_days_is_accepted(client: httpx.Client) -> None:
    response = client.post(
        "/api/reporte-fidelizacion/generar",
        json={"desde": "2025-01-01", "hasta": "2026-01-02", "formato": "csv"},  # 366 days
    )
    assert response.status_code == 202, response.text
    client.delete(response.headers["location"])


def test_failed_authentication_is_limited_per_address_without_the_database(
    api: Api, engine: Engine
) -> None:
    limit = Settings.model_fields["auth_failures_per_minute"].default
    # Addresses of their own (uvicorn trusts X-Forwarded-For from 127.0.0.1, as from a proxy),
    # so no other test's failures count here.
    attacker = {"X-Forwarded-For": f"203.0.113.{uuid.uuid4().int % 250 + 1}"}
    with api.client(key=None) as anonymous, api.client() as valid:

        def guess() -> httpx.Response:
            bad = {"Authorization": f"Bearer clk_guess_{uuid.uuid4().hex}", **attacker}
            return anonymous.get("/api/tipos-documento/", headers=bad)

        assert [guess().status_code for _ in range(limit)] == [401] * limit
        refused = guess()
        assert_problem(refused, 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        # The same address with a valid key keeps working; another address is not limited.
        assert valid.get("/api/tipos-documento/", headers=attacker).status_code == 200
        elsewhere = {"Authorization": "Bearer clk_guess_other", "X-Forwarded-For": "198.51.100.9"}
        assert anonymous.get("/api/tipos-documento/", headers=elsewhere).status_code == 401
        # No query any more: with api_keys locked, a lookup would wait for the lock; the
        # refusals come at once.
        with engine.begin() as connection:
            connection.execute(text("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"))
            started = time.monotonic()
            assert [guess().status_code for _ in range(20)] == [429] * 20
            assert time.monotonic() - started < 2


def test_many_long_polls_on_one_key_leave_the_limiter_and_readiness_alone(
    api: Api, client: httpx.Client, engine: Engine
) -> None:
    per_key = Settings.model_fields["long_polls_per_key"].default
    waiting = 120  # more than the 100 connections of the pool the waits used to share
    key = new_key(engine, ["export"])
    limits = httpx.Limits(max_connections=waiting)
    # Purchases locked: the report stays queued or running, so every wait could last 10 s.
    with compras_locked(engine), api.client(key, limits=limits) as waiter:
        job = waiter.post("/api/reporte-fidelizacion/generar", json={"formato": "csv"}).json()

        def wait() -> float:
            started = time.monotonic()
            answer = waiter.get(f"/api/jobs/{job['id']}", params={"wait": 10})
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] in {"queued", "running"}
            return time.monotonic() - started

        with ThreadPoolExecutor(max_workers=waiting) as pool:
            durations = [pool.submit(wait) for _ in range(waiting)]
            time.sleep(3)  # every wait is under way, or already answered
            ready = client.get("/ready")
            limited = client.get("/api/tipos-documento/")
            durations_s = [future.result() for future in durations]
        waiter.delete(f"/api/jobs/{job['id']}")
    assert ready.status_code == 200, ready.text
    assert limited.status_code == 200
    assert "ratelimit" in limited.headers, "the rate limiter failed open"
    held = [seconds for seconds in durations_s if seconds >= 9.5]
    assert len(held) == per_key, sorted(durations_s)
    # The rest answer at once (a loaded machine takes a few seconds for 120 answers).
    assert max(seconds for seconds in durations_s if seconds < 9.5) < 7, sorted(durations_s)

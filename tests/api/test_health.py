from __future__ import annotations

import httpx


def test_health_needs_no_key(anonymous: httpx.Client) -> None:
    response = anonymous.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_checks_postgresql_and_redis(anonymous: httpx.Client) -> None:
    response = anonymous.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"postgresql": "ok", "redis": "ok"}}


def test_request_id_is_echoed_or_generated(anonymous: httpx.Client) -> None:
    echoed = anonymous.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = anonymous.get("/health/")
    assert generated.status_code == 200
    assert len(generated.headers["x-request-id"]) == 32


def test_unknown_path_is_problem_json(anonymous: httpx.Client) -> None:
    response = anonymous.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 404 and body["title"] == "Not Found"

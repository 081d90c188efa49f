"""Rate limits, request size limits and Prometheus metrics, through the real API."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import Engine, text

from shared import api_keys
from tests.conftest import Api


def make_limited_key(engine: Engine, per_minute: int) -> str:
    new_key = api_keys.generate_key()
    with engine.begin() as connection:
        connection.execute(api_keys.insert_key("limited", ["read"], new_key))
        connection.execute(
            text("UPDATE api_keys SET rate_limit_per_minute = :n WHERE key_hash = :h"),
            {"n": per_minute, "h": new_key.key_hash},
        )
        connection.execute(api_keys.NOTIFY_CHANGED)
    return new_key.key


def test_every_answer_carries_the_ratelimit_headers(client: httpx.Client) -> None:
    response = client.get("/api/tipos-documento/")
    assert response.status_code == 200
    assert re.fullmatch(r'"default";q=\d+;w=60', response.headers["ratelimit-policy"])
    assert re.fullmatch(r'"default";r=\d+;t=\d+', response.headers["ratelimit"])
    missing = client.get("/api/clientes/999999999999/")
    assert missing.status_code == 404
    assert "ratelimit" in missing.headers


def test_over_quota_is_429_problem_with_retry_after(api: Api, engine: Engine) -> None:
    key = make_limited_key(engine, per_minute=3)
    with api.client(key) as http:
        answers = [http.get("/api/tipos-documento/") for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    assert answers[0].headers["ratelimit-policy"] == '"default";q=3;w=60'
    assert answers[2].headers["ratelimit"].startswith('"default";r=0;')
    refused = answers[3]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 61
    assert refused.json()["violated-policies"] == ["default"]


def test_oversized_query_string_is_414(client: httpx.Client) -> None:
    response = client.get("/api/clientes/", params={"q": "x" * 5000})
    assert response.status_code == 414
    assert response.headers["content-type"] == "application/problem+json"


def test_oversized_body_is_413_and_garbage_json_is_a_clear_error(client: httpx.Client) -> None:
    big = client.post(
        "/api/clientes/buscar/lote/",
        content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert big.status_code == 413
    garbage = client.post(
        "/api/clientes/buscar/lote/",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert garbage.status_code in {400, 422}
    assert garbage.headers["content-type"] == "application/problem+json"


def test_metrics_count_requests_by_route_template(
    client: httpx.Client, anonymous: httpx.Client
) -> None:
    client.get("/api/clientes/424242424242/")
    body = anonymous.get("/metrics").text
    labels = 'method="GET",route="/api/clientes/{cliente_id}",status="404"'
    assert re.search(r"clientes_http_requests_total\{" + re.escape(labels) + r"\} \d", body)
    assert "clientes_http_request_duration_seconds_bucket" in body
    for pool in ("jobs", "lookups"):
        assert f'clientes_db_pool_connections{{pool="{pool}",state="in_use"}}' in body

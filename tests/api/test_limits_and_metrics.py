"""Rate limits, request size limits and Prometheus metrics, through the real API."""

from __future__ import annotations

import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import redis
from sqlalchemy import Engine, text

from services.query_api import ratelimit
from shared import api_keys
from tests.conftest import Api, own_api


def make_limited_key(engine: Engine, per_minute: int) -> tuple[str, str]:
    """A new read key with its own quota: the key, and its id."""
    new_key = api_keys.generate_key()
    with engine.begin() as connection:
        key_id = connection.execute(api_keys.insert_key("limited", ["read"], new_key)).scalar_one()
        connection.execute(
            text("UPDATE api_keys SET rate_limit_per_minute = :n WHERE key_hash = :h"),
            {"n": per_minute, "h": new_key.key_hash},
        )
        connection.execute(api_keys.NOTIFY_CHANGED)
    return new_key.key, str(key_id)


def wait_for_a_fresh_window(seconds_needed: float) -> int:
    """Sleep, if need be, until the rate limiter's current window has `seconds_needed` left;
    that window's number."""
    left = ratelimit.WINDOW_SECONDS - time.time() % ratelimit.WINDOW_SECONDS
    if left < seconds_needed:
        time.sleep(left + 0.1)
    return ratelimit.window_at(time.time())


def test_every_answer_carries_the_ratelimit_headers(client: httpx.Client) -> None:
    response = client.get("/api/tipos-documento/")
    assert response.status_code == 200
    assert re.fullmatch(r'"default";q=\d+;w=60', response.headers["ratelimit-policy"])
    assert re.fullmatch(r'"default";r=\d+;t=\d+', response.headers["ratelimit"])
    missing = client.get("/api/clientes/999999999999/")
    assert missing.status_code == 404
    assert "ratelimit" in missing.headers


def test_over_quota_is_429_problem_with_retry_after(api: Api, engine: Engine) -> None:
    key, _ = make_limited_key(engine, per_minute=3)
    wait_for_a_fresh_window(10)
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


def test_processes_count_a_busy_key_in_leases_and_never_give_it_more_than_its_quota(
    service_env: dict[str, str], engine: Engine, redis_url: str
) -> None:
    limit = 200
    key, key_id = make_limited_key(engine, per_minute=limit)
    processes = 2
    with own_api(service_env, WEB_CONCURRENCY=str(processes)) as api:
        clients = [api.client(key) for _ in range(8)]  # connections spread over the processes
        window = wait_for_a_fresh_window(30)
        counter = ratelimit.counter_key(key_id, window)
        store = redis.Redis.from_url(redis_url)
        try:
            first = clients[0].get("/api/tipos-documento/")
            assert first.headers["ratelimit"].startswith(f'"default";r={limit - 1};')
            # The next request reserves a lease: a sixteenth of what is left, ahead of use.
            clients[0].get("/api/tipos-documento/")
            assert int(store.get(counter) or 0) == 1 + (limit - 1) // ratelimit.LEASE_SHARE

            def ask(client: httpx.Client) -> int:
                return client.get("/api/tipos-documento/").status_code

            with ThreadPoolExecutor(len(clients)) as pool:
                statuses = Counter(pool.map(ask, [c for _ in range(40) for c in clients]))
            reserved = int(store.get(counter) or 0)
        finally:
            for client in clients:
                client.close()
            store.close()
    answered = statuses[200] + 2
    assert set(statuses) == {200, 429}, statuses
    # Never more than the quota, whichever process holds a place; at most what each process
    # reserved last (a sixteenth of what was left) goes unused.
    assert limit - processes * (limit // ratelimit.LEASE_SHARE) <= answered <= limit, statuses
    assert reserved >= limit


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

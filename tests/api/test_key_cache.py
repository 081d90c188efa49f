"""The API's key cache against lost notifications and dead listeners (SPEC §12, issue 12 #11):
the run's API, whose listener connection the tests kill or freeze (it comes back by itself),
and an API of its own with a short cache age, whose notifications a test bypasses."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text

from harness import servers
from services.query_api.auth import LISTENER_ANSWER_SECONDS, LISTENER_CHECK_SECONDS
from shared import api_keys
from tests.conftest import Api, own_api
from tests.jobs import new_key

SHORT_CACHE_SECONDS = 3


@pytest.fixture(scope="module")
def short_cache_api(service_env: dict[str, str]) -> Iterator[Api]:
    """An API process of its own (the run's database and Redis) with a short cache age."""
    with own_api(service_env, API_KEY_CACHE_SECONDS=str(SHORT_CACHE_SECONDS)) as api:
        yield api


def revoke(engine: Engine, key: str, *, notify: bool) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE key_hash = :h"),
            {"h": api_keys.hash_key(key)},
        )
        if notify:
            connection.execute(api_keys.NOTIFY_CHANGED)


def listener_backends(engine: Engine, api: Api) -> set[int]:
    """The PostgreSQL backends of the API's listener connections (one, unless one is frozen)."""
    with engine.connect() as connection:
        return set(
            connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = :name"
                    " AND datname = current_database()"
                ),
                {"name": f"api-keys-listener-{api.process.pid}"},
            ).scalars()
        )


def the_listener(engine: Engine, api: Api) -> int:
    servers.wait_until(lambda: len(listener_backends(engine, api)) == 1, 10, "the listener")
    (pid,) = listener_backends(engine, api)
    return pid


def status_with(api: Api, key: str) -> int:
    with api.client(key) as http:
        return http.get("/api/tipos-documento/").status_code


def test_a_revocation_whose_notification_is_lost_ends_within_the_cache_age(
    short_cache_api: Api, engine: Engine
) -> None:
    key = new_key(engine, ["read"])
    servers.wait_until(lambda: status_with(short_cache_api, key) == 200, 10, "the new key")
    revoke(engine, key, notify=False)  # the notification lost on its way
    servers.wait_until(
        lambda: status_with(short_cache_api, key) == 401,
        SHORT_CACHE_SECONDS + 2,
        "the revoked key refused",
    )


def test_a_killed_listener_comes_back_and_revocations_apply_again(api: Api, engine: Engine) -> None:
    first = the_listener(engine, api)
    key = new_key(engine, ["read"])
    servers.wait_until(lambda: status_with(api, key) == 200, 10, "the new key")
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    revoke(engine, key, notify=True)  # sent while nobody listens
    servers.wait_until(lambda: bool(listener_backends(engine, api) - {first}), 10, "a new listener")
    assert status_with(api, key) == 401
    # The new listener hears the next change at once.
    other = new_key(engine, ["read"])
    assert status_with(api, other) == 200
    revoke(engine, other, notify=True)
    servers.wait_until(lambda: status_with(api, other) == 401, 2, "revoked at once")


def test_a_listener_that_silently_stops_answering_is_replaced(api: Api, engine: Engine) -> None:
    frozen = the_listener(engine, api)
    key = new_key(engine, ["read"])
    servers.wait_until(lambda: status_with(api, key) == 200, 10, "the new key")
    # A backend that no longer runs: its TCP connection stays open and nothing arrives on it,
    # like a connection a NAT or a failover dropped without a word.
    os.kill(frozen, signal.SIGSTOP)
    try:
        revoke(engine, key, notify=True)  # never delivered
        servers.wait_until(
            lambda: bool(listener_backends(engine, api) - {frozen}),
            LISTENER_CHECK_SECONDS
            + LISTENER_ANSWER_SECONDS
            + 30,  # a busy machine reconnects slowly
            "a new listener",
        )
        assert status_with(api, key) == 401
    finally:
        os.kill(frozen, signal.SIGCONT)
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": frozen})


def key_queries_waiting(engine: Engine) -> int:
    """The API's queries for one key (not the listener's reload of every hash), waiting for a
    lock on api_keys."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE '%api_keys.key_hash = %'"
                )
            ).scalar_one()
        )


def test_requests_that_miss_the_cache_together_wait_for_one_query(api: Api, engine: Engine) -> None:
    """While a key's query is under way (a process's start, its entry's age passed, a change),
    the requests that miss the cache meanwhile wait for that query: one, not one each."""
    key = new_key(engine, ["read"])
    with engine.connect() as locker, ThreadPoolExecutor(8) as clients:
        held = locker.begin()
        locker.execute(text("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"))  # queries wait
        try:
            answers = [clients.submit(status_with, api, key) for _ in range(8)]
            servers.wait_until(lambda: key_queries_waiting(engine) > 0, 10, "the key's query")
            time.sleep(1)  # the other seven arrive and miss the cache meanwhile
            assert key_queries_waiting(engine) == 1
        finally:
            held.rollback()
        assert [answer.result() for answer in answers] == [200] * 8


def test_the_cache_age_is_bounded_by_settings() -> None:
    from shared.settings import Settings

    with pytest.raises(ValueError, match="api_key_cache_seconds"):
        Settings(api_key_cache_seconds=61)

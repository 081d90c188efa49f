"""`/api/webhooks` (SPEC §11) through the real API: registration with the secret shown once,
endpoints private to their key, clear 422s, and the SSRF refusal when private addresses are not
allowed (a second API process with WEBHOOK_ALLOW_PRIVATE=false)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.conftest import Api, assert_problem, own_api
from tests.jobs import new_key
from tests.webhooks import own_key, register

ALL_EVENTS = ["job.succeeded", "job.failed", "job.canceled", "job.expired"]


def test_register_list_and_delete_an_endpoint(api: Api, engine: Engine) -> None:
    with own_key(api, engine) as http:
        response = http.post("/api/webhooks/", json={"url": "http://127.0.0.1:9/hook"})
        assert response.status_code == 201, response.text
        created = response.json()
        assert response.headers["Location"] == f"/api/webhooks/{created['id']}"
        assert created["url"] == "http://127.0.0.1:9/hook"
        assert created["events"] == ALL_EVENTS, "default: all four"
        assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40

        listed = http.get("/api/webhooks/").json()
        assert [e["id"] for e in listed] == [created["id"]]
        assert "secret" not in listed[0], "the secret is shown once"
        assert http.get(f"/api/webhooks/{created['id']}/deliveries").json() == {"results": []}

        assert http.delete(f"/api/webhooks/{created['id']}").status_code == 204
        assert http.get("/api/webhooks/").json() == []
        assert_problem(http.delete(f"/api/webhooks/{created['id']}"), 404)


def test_another_key_sees_nothing_and_gets_404(api: Api, engine: Engine) -> None:
    with own_key(api, engine) as owner, own_key(api, engine) as other:
        created = register(owner, "http://127.0.0.1:9/hook", events=["job.failed"])
        assert created["events"] == ["job.failed"]
        assert other.get("/api/webhooks/").json() == []
        assert_problem(other.get(f"/api/webhooks/{created['id']}/deliveries"), 404)
        assert_problem(other.delete(f"/api/webhooks/{created['id']}"), 404)
        assert [e["id"] for e in owner.get("/api/webhooks/").json()] == [created["id"]]


def test_the_export_scope_is_required(api: Api, engine: Engine) -> None:
    with api.client(key=new_key(engine, ["read"])) as reader:
        response = reader.post("/api/webhooks/", json={"url": "https://example.com/hook"})
        assert_problem(response, 403)
        assert_problem(reader.get("/api/webhooks/"), 403)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/hook"}, "url"),
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "http://user:pw@example.com/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "http://127.0.0.1:9/", "events": ["job.started"]}, "events[0]"),
        ({"url": "http://127.0.0.1:9/", "events": []}, "events"),
        ({}, "url"),
        ({"url": "http://127.0.0.1:9/", "secret": "mine"}, "secret"),
    ],
)
def test_bad_bodies_get_a_422_naming_the_field(
    api: Api, engine: Engine, body: dict[str, object], field: str
) -> None:
    with own_key(api, engine) as http:
        assert_problem(http.post("/api/webhooks/", json=body), 422, field=field)


def test_a_host_that_does_not_resolve_is_refused(api: Api, engine: Engine) -> None:
    with own_key(api, engine) as http:
        response = http.post("/api/webhooks/", json={"url": "https://no-such-host.invalid/h"})
        assert_problem(response, 422, field="url")


@pytest.fixture(scope="module")
def strict_api(service_env: dict[str, str]) -> Iterator[Api]:
    """The API as deployed: WEBHOOK_ALLOW_PRIVATE=false."""
    with own_api(service_env, WEBHOOK_ALLOW_PRIVATE="false") as api:
        yield api


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",  # loopback
        "http://localhost/hook",  # a name for loopback
        "http://[::1]/hook",
        "http://10.1.2.3/hook",  # private
        "https://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",  # link-local: cloud metadata
        "http://224.0.0.1/hook",  # multicast
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",  # loopback, IPv4-mapped
    ],
)
def test_private_addresses_are_refused_at_registration(
    strict_api: Api, engine: Engine, url: str
) -> None:
    with own_key(strict_api, engine) as http:
        problem = assert_problem(http.post("/api/webhooks/", json={"url": url}), 422, field="url")
        assert "public addresses only" in str(problem["detail"])
        assert http.get("/api/webhooks/").json() == []


def test_a_public_address_is_accepted_when_private_ones_are_refused(
    strict_api: Api, engine: Engine
) -> None:
    with own_key(strict_api, engine) as http:
        register(http, "https://93.184.215.14/hook")

"""`/api/api-keys` through the real API: create (the key shown once), list, show, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import Api, assert_problem

CREATED_FIELDS = {"id", "name", "scopes", "created_at", "key"}
LISTED_FIELDS = {"id", "name", "key_prefix", "scopes", "created_at", "revoked_at"}


def test_create_shows_the_key_once_and_it_works(api: Api, client: httpx.Client) -> None:
    response = client.post("/api/api-keys/", json={"name": " crm ", "scopes": ["read"]})
    assert response.status_code == 201
    created = response.json()
    assert set(created) == CREATED_FIELDS
    assert created["name"] == "crm" and created["scopes"] == ["read"]
    assert created["key"].startswith("clk_") and len(created["key"]) > 40
    assert datetime.fromisoformat(created["created_at"]).tzinfo is not None
    assert response.headers["location"] == f"/api/api-keys/{created['id']}"

    shown = client.get(response.headers["location"])
    assert shown.status_code == 200
    assert set(shown.json()) == LISTED_FIELDS
    assert shown.json()["key_prefix"] == created["key"][:12]
    assert created["key"] not in shown.text

    with api.client(created["key"]) as http:
        assert http.get("/api/tipos-documento").status_code == 200


def test_scopes_are_deduplicated_in_canonical_order(client: httpx.Client) -> None:
    body = {"name": "x", "scopes": ["admin", "read", "export", "read"]}
    created = client.post("/api/api-keys", json=body).json()
    assert created["scopes"] == ["read", "export", "admin"]


def test_list_never_shows_keys_or_hashes(client: httpx.Client) -> None:
    created = client.post("/api/api-keys/", json={"name": "listed", "scopes": ["export"]}).json()
    response = client.get("/api/api-keys/")
    assert response.status_code == 200
    listed = {row["id"]: row for row in response.json()}
    assert set(listed[created["id"]]) == LISTED_FIELDS
    assert listed[created["id"]]["revoked_at"] is None
    assert created["key"] not in response.text
    assert "key_hash" not in response.text and '"key"' not in response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "scopes": ["read", "superuser"]}, "scopes"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": "read"}, "scopes"),
        ({"name": "x"}, "scopes"),
        ({"scopes": ["read"]}, "name"),
        ({"name": "   ", "scopes": ["read"]}, "name"),
        ({"name": "n" * 101, "scopes": ["read"]}, "name"),
    ],
)
def test_create_refuses_bad_bodies(client: httpx.Client, body: dict[str, Any], field: str) -> None:
    assert_problem(client.post("/api/api-keys/", json=body), 422, field=field)


def test_revoke(api: Api, client: httpx.Client) -> None:
    created = client.post("/api/api-keys/", json={"name": "gone", "scopes": ["read"]}).json()
    url = f"/api/api-keys/{created['id']}"

    revoked = client.delete(url + "/")
    assert revoked.status_code == 204 and revoked.content == b""
    assert_problem(client.delete(url), 404)  # already revoked

    with api.client(created["key"]) as http:
        assert http.get("/api/tipos-documento").status_code == 401
    active = {row["id"] for row in client.get("/api/api-keys").json()}
    assert created["id"] not in active
    everything = client.get("/api/api-keys", params={"include_revoked": "true"}).json()
    (row,) = [row for row in everything if row["id"] == created["id"]]
    assert row["revoked_at"] is not None
    assert client.get(url).json()["revoked_at"] == row["revoked_at"]


def test_unknown_and_malformed_ids(client: httpx.Client) -> None:
    unknown = "/api/api-keys/6f1c2b9e-0000-4000-8000-000000000000"
    assert_problem(client.delete(unknown), 404)
    assert_problem(client.get(unknown), 404)
    assert_problem(client.delete("/api/api-keys/not-a-uuid"), 400, field="key_id")

"""Authentication and scopes through the real API: both header forms, bad keys, wrong scopes,
and revocation that takes effect on the very next request."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Api, assert_problem

READ_ENDPOINTS = [
    ("GET", "/api/tipos-documento/"),
    ("GET", "/api/clientes/"),
    ("GET", "/api/clientes/1/"),
    ("GET", "/api/clientes/1/compras/"),
    ("GET", "/api/clientes/buscar/?tipo_documento=CC&numero_documento=1"),
    ("POST", "/api/clientes/buscar/lote/"),
]
ADMIN_ENDPOINTS = [
    ("GET", "/api/api-keys/"),
    ("POST", "/api/api-keys/"),
    ("DELETE", "/api/api-keys/00000000-0000-0000-0000-000000000000"),
]
LOTE = {"documentos": [{"tipo_documento": "CC", "numero_documento": "1"}]}


def create_key(client: httpx.Client, *scopes: str) -> tuple[str, str]:
    """A new key with these scopes, made through the API: (id, key)."""
    response = client.post("/api/api-keys/", json={"name": "test_auth", "scopes": list(scopes)})
    assert response.status_code == 201, response.text
    return response.json()["id"], response.json()["key"]


def call(http: httpx.Client, method: str, path: str) -> httpx.Response:
    return http.request(method, path, json=LOTE if method == "POST" else None)


def assert_unauthorized(response: httpx.Response) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), READ_ENDPOINTS + ADMIN_ENDPOINTS)
def test_no_key_is_401_with_www_authenticate(
    anonymous: httpx.Client, method: str, path: str
) -> None:
    assert_unauthorized(call(anonymous, method, path))


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer clk_not_a_real_key"},
        {"X-API-Key": "clk_not_a_real_key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
    ],
    ids=["bearer", "x-api-key", "basic-scheme", "empty-bearer"],
)
def test_bad_keys_are_401(anonymous: httpx.Client, headers: dict[str, str]) -> None:
    assert_unauthorized(anonymous.get("/api/clientes/", headers=headers))


def test_both_header_forms_carry_a_good_key(api: Api, client: httpx.Client) -> None:
    _, key = create_key(client, "read")
    with api.client(key=None) as http:
        assert http.get("/api/tipos-documento", headers={"X-API-Key": key}).status_code == 200
        bearer = {"Authorization": f"Bearer {key}"}
        assert http.get("/api/tipos-documento", headers=bearer).status_code == 200
        lowercase = {"Authorization": f"bearer {key}"}
        assert http.get("/api/tipos-documento", headers=lowercase).status_code == 200


@pytest.mark.parametrize(("method", "path"), READ_ENDPOINTS)
def test_lookups_need_the_read_scope(
    api: Api, client: httpx.Client, method: str, path: str
) -> None:
    _, key = create_key(client, "export", "admin")
    with api.client(key) as http:
        body = assert_problem(call(http, method, path), 403)
    assert "read" in str(body["detail"])


@pytest.mark.parametrize(("method", "path"), ADMIN_ENDPOINTS)
def test_key_management_needs_the_admin_scope(
    api: Api, client: httpx.Client, method: str, path: str
) -> None:
    _, key = create_key(client, "read", "export")
    with api.client(key) as http:
        body = assert_problem(call(http, method, path), 403)
    assert "admin" in str(body["detail"])


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
def test_a_revoked_key_stops_working_at_once(api: Api, client: httpx.Client, header: str) -> None:
    key_id, key = create_key(client, "read")
    value = f"Bearer {key}" if header == "Authorization" else key
    with api.client(key=None) as http:
        # Used first, so the API has it cached when it is revoked.
        for _ in range(2):
            assert http.get("/api/tipos-documento", headers={header: value}).status_code == 200
        assert client.delete(f"/api/api-keys/{key_id}").status_code == 204
        assert_unauthorized(http.get("/api/tipos-documento", headers={header: value}))


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics", "/openapi.json", "/docs"])
def test_public_endpoints_need_no_key(anonymous: httpx.Client, path: str) -> None:
    assert anonymous.get(path).status_code == 200

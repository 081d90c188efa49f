"""CORS (SPEC §9): browser apps on the `CORS_ORIGINS` origins may call the API, preflight
included, and read the headers a client needs; other origins, and every origin by default, may
not. The run's API has the setting (conftest.service_env); real HTTP."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from starlette.middleware.cors import CORSMiddleware

from services.query_api.main import create_app
from shared.models import Cliente
from shared.settings import Settings
from tests.conftest import Api
from tests.factories import make_cliente

FRONT_END = "http://localhost:3000"
OTHER_SITE = "https://evil.example"
EXPOSED = {
    "location",
    "retry-after",
    "preference-applied",
    "content-disposition",
    "content-range",
    "etag",
    "x-request-id",
    "ratelimit",
    "ratelimit-policy",
}


@pytest.fixture(scope="module")
def cliente(engine: Engine) -> Cliente:
    return make_cliente(engine)


def preflight(api: Api, origin: str, path: str, method: str, headers: str) -> httpx.Response:
    return httpx.options(
        f"{api.url}{path}",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def test_preflight_of_a_one_call_export_is_answered(api: Api, cliente: Cliente) -> None:
    asked = "authorization, prefer, idempotency-key, content-type"
    response = preflight(api, FRONT_END, f"/api/clientes/{cliente.id}/exportar", "POST", asked)
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == FRONT_END
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "prefer", "idempotency-key", "content-type", "range"} <= allowed
    assert "access-control-allow-credentials" not in response.headers
    assert response.headers["x-request-id"]


def test_preflight_from_another_origin_is_refused(api: Api, cliente: Cliente) -> None:
    path = f"/api/clientes/{cliente.id}/exportar"
    response = preflight(api, OTHER_SITE, path, "POST", "authorization")
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_a_browser_app_reads_the_headers_it_needs(api: Api, cliente: Cliente) -> None:
    with api.client() as http:
        http.headers["Origin"] = FRONT_END
        created = http.post(f"/api/clientes/{cliente.id}/exportar")
        assert created.status_code == 202, created.text
        assert created.headers["access-control-allow-origin"] == FRONT_END
        exposed = created.headers["access-control-expose-headers"].lower().split(", ")
        assert set(exposed) >= EXPOSED
        # An answer the request refused carries them too: the app can read why.
        missing = http.get("/api/clientes/999999999999")
        assert missing.status_code == 404
        assert missing.headers["access-control-allow-origin"] == FRONT_END


def test_another_origin_gets_no_cors_headers(api: Api, cliente: Cliente) -> None:
    with api.client() as http:
        http.headers["Origin"] = OTHER_SITE
        response = http.get(f"/api/clientes/{cliente.id}")
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def middleware_of(settings: Settings) -> list[object]:
    return [middleware.cls for middleware in create_app(settings).user_middleware]


def test_by_default_no_origin_is_allowed() -> None:
    assert Settings(_env_file=None).cors_origin_list == []
    assert CORSMiddleware not in middleware_of(Settings(_env_file=None))
    assert CORSMiddleware in middleware_of(Settings(cors_origins=FRONT_END))


@pytest.mark.parametrize(
    "origins", ["http://localhost:3000/", "localhost:3000", "https://app.example/path", "ftp://x"]
)
def test_an_origin_that_could_never_match_is_refused_at_start(origins: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS"):
        Settings(cors_origins=origins)

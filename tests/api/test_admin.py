"""The back office at /admin, through the real API process: login, search, jobs, API keys."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from shared import api_keys
from shared.models import ApiKey, Job, WebhookAttempt, WebhookEvent
from tests.admin_pages import SETTINGS, login
from tests.conftest import Api
from tests.factories import make_cliente, unique_digits
from tests.webhooks import own_key, register

SECRET_FIELD = re.compile(r'value="([^"]+)"[^>]*id="modal-secret-value"')


@pytest.fixture
def admin(api: Api) -> Iterator[httpx.Client]:
    http = login(api)
    yield http
    http.close()


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/", "/admin/cliente/list", "/admin/api-key/create"]
)
def test_every_page_needs_a_login(anonymous: httpx.Client, path: str) -> None:
    response = anonymous.get(path, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].endswith("/admin/login")


def test_a_wrong_password_is_refused(api: Api) -> None:
    with api.client(key=None, follow_redirects=False) as http:
        response = http.post(
            "/admin/login",
            data={"username": SETTINGS.admin_username, "password": SETTINGS.admin_password + "x"},
        )
        assert response.status_code == 400
        assert "Invalid credentials" in response.text
        assert "set-cookie" not in response.headers
        assert http.get("/admin/").status_code == 302


def test_after_login_a_customer_is_found_by_document(admin: httpx.Client, engine: Engine) -> None:
    # A surname no one else has: the name search below finds this customer only.
    surname = f"Por Documento {unique_digits()}"
    wanted = make_cliente(engine, nombre="Buscada", apellido=surname)
    other = make_cliente(engine, nombre="Otra", apellido="Persona")

    page = admin.get("/admin/")
    assert page.status_code == 200 and "Clientes" in page.text

    found = admin.get("/admin/cliente/list", params={"search": wanted.numero_documento})
    assert found.status_code == 200
    assert wanted.numero_documento in found.text and "Por Documento" in found.text
    assert other.numero_documento not in found.text

    by_name = admin.get("/admin/cliente/list", params={"search": surname.lower()})
    assert wanted.numero_documento in by_name.text
    assert other.numero_documento not in by_name.text

    logout = admin.get("/admin/logout")
    assert logout.headers["location"].endswith("/admin/login")
    assert admin.get("/admin/cliente/list").status_code == 302


def test_jobs_are_read_only_and_link_to_their_download(admin: httpx.Client, engine: Engine) -> None:
    with Session(engine) as session:
        job = Job(
            type="export_cliente",
            status="succeeded",
            params={"formato": "csv"},
            progress=100,
            result={"filename": "cliente_CC_<b>1</b>.csv", "content_type": "text/csv"},
        )
        session.add(job)
        session.commit()
        job_id = job.id

    listing = admin.get("/admin/job/list")
    assert listing.status_code == 200
    assert f'href="/api/jobs/{job_id}/download"' in listing.text
    assert html.escape("cliente_CC_<b>1</b>.csv") in listing.text  # escaped, never markup
    assert admin.get("/admin/job/create").status_code == 403
    assert admin.get(f"/admin/job/edit/{job_id}").status_code == 403


def test_an_api_key_is_shown_once_and_revoking_it_works_at_once(
    admin: httpx.Client, api: Api, engine: Engine
) -> None:
    name = f"crm-{uuid.uuid4().hex[:8]}"
    created = admin.post("/admin/api-key/create", data={"name": name, "scopes": ["read"]})
    assert created.status_code == 200
    assert "no-store" in created.headers["cache-control"]
    match = SECRET_FIELD.search(created.text)
    assert match, created.text[-2000:]
    key = match.group(1)

    with Session(engine) as session:
        stored = session.execute(select(ApiKey).where(ApiKey.name == name)).scalar_one()
    assert stored.key_hash == api_keys.hash_key(key) and stored.scopes == ["read"]
    listing = admin.get("/admin/api-key/list")
    details = admin.get(f"/admin/api-key/details/{stored.id}")
    for page in (listing, details):
        assert page.status_code == 200 and name in page.text
        assert key not in page.text and stored.key_hash not in page.text

    with api.client(key=key) as client:
        # The first use caches the key in the API process; revocation must reach that cache.
        assert client.get("/api/tipos-documento/").status_code == 200
        # The list's action shows what would be revoked; only its form's POST revokes.
        confirm = admin.get("/admin/api-key/action/revocar", params={"pks": str(stored.id)})
        assert confirm.status_code == 200 and name in confirm.text
        assert client.get("/api/tipos-documento/").status_code == 200
        revoked = admin.post("/admin/api-key/revocar", data={"pks": str(stored.id)})
        assert revoked.status_code == 303
        assert revoked.headers["location"].endswith("/admin/api-key/list")
        assert client.get("/api/tipos-documento/").status_code == 401

    with Session(engine) as session:
        assert session.get_one(ApiKey, stored.id).revoked_at is not None


def test_webhook_endpoints_and_deliveries_are_listed_without_the_secret(
    admin: httpx.Client, api: Api, engine: Engine
) -> None:
    with own_key(api, engine) as http:
        endpoint = register(http, "http://127.0.0.1:9/admin-hook")
    with Session(engine) as session:
        job = Job(type="export_cliente", status="succeeded", params={}, progress=100)
        session.add(job)
        session.flush()
        event = WebhookEvent(
            endpoint_id=uuid.UUID(endpoint["id"]), job_id=job.id, type="job.succeeded", data={}
        )
        session.add(event)
        session.flush()
        session.add(
            WebhookAttempt(
                event_id=event.id,
                attempt=1,
                attempted_at=datetime.now(UTC),
                status_code=503,
                duration_ms=12,
                error="HTTP 503",
            )
        )
        session.commit()
        event_id = event.id

    endpoints = admin.get("/admin/webhook-endpoint/list")
    assert endpoints.status_code == 200
    assert "http://127.0.0.1:9/admin-hook" in endpoints.text
    details = admin.get(f"/admin/webhook-endpoint/details/{endpoint['id']}")
    assert details.status_code == 200
    assert endpoint["secret"] not in endpoints.text + details.text
    events = admin.get("/admin/webhook-event/list")
    assert events.status_code == 200 and str(event_id) in events.text
    attempts = admin.get("/admin/webhook-attempt/list")
    assert attempts.status_code == 200 and "HTTP 503" in attempts.text
    assert admin.get("/admin/webhook-event/create").status_code == 403

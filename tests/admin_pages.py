"""Helpers for tests that drive the back office at /admin through the real API process."""

from __future__ import annotations

import httpx

from shared.settings import Settings
from tests.conftest import ADMIN_PASSWORD, SECRET_KEY, Api

# The settings the API process gets (tests.conftest.service_env).
SETTINGS = Settings(secret_key=SECRET_KEY, admin_password=ADMIN_PASSWORD)


def login(api: Api, **headers: str) -> httpx.Client:
    """A client holding an admin session of `api` (ADMIN_USERNAME / ADMIN_PASSWORD)."""
    http = api.client(key=None, follow_redirects=False)
    http.headers.update(headers)
    response = http.post(
        "/admin/login",
        data={"username": SETTINGS.admin_username, "password": SETTINGS.admin_password},
    )
    assert response.status_code == 302, response.text[:500]
    assert response.headers["location"].endswith("/admin/")
    return http

"""Issue 12 item 12: the /admin login is throttled and logged, sessions end when they should, the
cookie stays on HTTPS, no other site can make a change, and a malformed id is a 400.

An API process of this module's own, with a redis-server of its own (emptied before each test):
locking out 127.0.0.1 or the admin username must not touch the run's other tests. Requests come
from 127.0.0.1, which uvicorn trusts as a proxy by default (FORWARDED_ALLOW_IPS), so
`X-Forwarded-For` plays the client's address and `X-Forwarded-Proto` the scheme, as a proxy in
front would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from harness import servers
from shared import api_keys
from tests.admin_pages import SETTINGS, login
from tests.conftest import Api
from tests.jobs import new_key

MAX_FAILURES = 3
WINDOW_SECONDS = 60


@dataclass
class PrivateRedis:
    port: int
    process: servers.Process

    def restart(self) -> None:
        self.process = servers.redis_server(self.port).start()
        servers.wait_for_redis(self.port)


@pytest.fixture(scope="module")
def private_redis() -> Iterator[PrivateRedis]:
    port = servers.free_port()
    server = PrivateRedis(port, servers.redis_server(port).start())
    servers.wait_for_redis(port)
    yield server
    server.process.stop()


@pytest.fixture(scope="module")
def redis_port(private_redis: PrivateRedis) -> int:
    return private_redis.port


def start_api(service_env: dict[str, str], redis_port: int, **settings: str) -> servers.Process:
    env = {
        **service_env,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ADMIN_LOGIN_MAX_FAILURES": str(MAX_FAILURES),
        "ADMIN_LOGIN_WINDOW_SECONDS": str(WINDOW_SECONDS),
        **settings,
    }
    return servers.api_server(env, servers.free_port())


def api_of(process: servers.Process) -> Api:
    return Api(f"http://127.0.0.1:{process.env['PORT']}", process)


@pytest.fixture(scope="module")
def guarded_api(service_env: dict[str, str], redis_port: int) -> Iterator[Api]:
    process = start_api(service_env, redis_port)
    yield api_of(process)
    process.stop()


@pytest.fixture
def guarded(guarded_api: Api, redis_port: int) -> Api:
    """The module's API, with no failure counted and no session alive."""
    redis.Redis(port=redis_port).flushall()
    return guarded_api


def attempt(api: Api, address: str, username: str, password: str, **headers: str) -> httpx.Response:
    with api.client(key=None, follow_redirects=False) as http:
        return http.post(
            "/admin/login",
            data={"username": username, "password": password},
            headers={"X-Forwarded-For": address, **headers},
        )


def wrong_password() -> str:
    return f"wrong-{uuid.uuid4().hex}"


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text[-1000:]
    assert 0 < int(response.headers["retry-after"]) <= WINDOW_SECONDS
    assert "set-cookie" not in response.headers


def test_failures_from_one_address_lock_out_that_address_only(guarded: Api) -> None:
    for _ in range(MAX_FAILURES):
        refused = attempt(guarded, "10.1.0.1", f"user-{uuid.uuid4().hex[:6]}", wrong_password())
        assert refused.status_code == 400
    # Past the limit even the right password is refused from there: guessing has stopped.
    assert_throttled(attempt(guarded, "10.1.0.1", SETTINGS.admin_username, SETTINGS.admin_password))
    elsewhere = attempt(guarded, "10.1.0.2", SETTINGS.admin_username, SETTINGS.admin_password)
    assert elsewhere.status_code == 302


def test_failures_on_one_username_lock_it_out_from_every_address(guarded: Api) -> None:
    for n in range(MAX_FAILURES):
        refused = attempt(guarded, f"10.2.0.{n}", SETTINGS.admin_username, wrong_password())
        assert refused.status_code == 400
    assert_throttled(attempt(guarded, "10.2.1.1", SETTINGS.admin_username, SETTINGS.admin_password))
    other_user = attempt(guarded, "10.2.1.2", "someone-else", wrong_password())
    assert other_user.status_code == 400


def test_a_success_clears_the_count(guarded: Api) -> None:
    for _ in range(2):
        for _ in range(MAX_FAILURES - 1):
            wrong = attempt(guarded, "10.3.0.1", SETTINGS.admin_username, wrong_password())
            assert wrong.status_code == 400
        right = attempt(guarded, "10.3.0.1", SETTINGS.admin_username, SETTINGS.admin_password)
        assert right.status_code == 302


def test_failures_are_logged_with_address_and_username_never_the_password(guarded: Api) -> None:
    password, username = wrong_password(), f"intruso-{uuid.uuid4().hex[:6]}"
    start = guarded.process.log_path.stat().st_size
    assert attempt(guarded, "10.4.0.1", username, password).status_code == 400
    for _ in range(MAX_FAILURES):
        attempt(guarded, "10.4.0.1", username, password)

    def lines() -> str:
        with guarded.process.log_path.open("rb") as log:
            log.seek(start)
            return log.read().decode()

    servers.wait_until(lambda: "too many failures" in lines(), 10, "the throttled line")
    failed = [line for line in lines().splitlines() if "admin login failed" in line]
    assert len(failed) == MAX_FAILURES
    assert all('"client":"10.4.0.1"' in line and username in line for line in failed)
    assert password not in lines()


def logged_in(api: Api, cookies: httpx.Cookies) -> bool:
    with api.client(key=None, follow_redirects=False, cookies=cookies) as http:
        page = http.get("/admin/api-key/list")
    assert page.status_code in (200, 302), page.text[-500:]
    return page.status_code == 200


def test_logout_ends_every_copy_of_the_session(guarded: Api) -> None:
    browser = login(guarded)
    stolen = httpx.Cookies(browser.cookies)
    assert logged_in(guarded, stolen)
    logout = browser.get("/admin/logout")
    assert logout.status_code == 302 and logout.headers["location"].endswith("/admin/login")
    browser.close()
    # Before, the cookie was still valid (signed, within its 8 hours) after a logout.
    assert not logged_in(guarded, stolen)


def test_a_password_change_ends_existing_sessions(
    guarded: Api, service_env: dict[str, str], redis_port: int
) -> None:
    browser = login(guarded)
    cookies = httpx.Cookies(browser.cookies)
    browser.close()
    new_password = f"new-password-{uuid.uuid4().hex}"
    # The same deployment restarted with another ADMIN_PASSWORD: same SECRET_KEY, same Redis.
    changed = start_api(service_env, redis_port, ADMIN_PASSWORD=new_password)
    try:
        restarted = api_of(changed)
        assert logged_in(guarded, cookies)  # the old process still has the old password
        assert not logged_in(restarted, cookies)
        old = attempt(restarted, "10.5.0.1", SETTINGS.admin_username, SETTINGS.admin_password)
        assert old.status_code == 400
        new = attempt(restarted, "10.5.0.1", SETTINGS.admin_username, new_password)
        assert new.status_code == 302
    finally:
        changed.stop()


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_the_cookie_is_secure_whenever_served_over_https(guarded: Api, scheme: str) -> None:
    answer = attempt(
        guarded,
        "10.6.0.1",
        SETTINGS.admin_username,
        SETTINGS.admin_password,
        **{"X-Forwarded-Proto": scheme},
    )
    assert answer.status_code == 302
    cookie = answer.headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie and "path=/admin" in cookie
    assert ("; secure" in cookie) == (scheme == "https")


# What a browser sends with a request another page made it send.
CROSS_SITE_HEADERS: dict[str, dict[str, str]] = {
    "another-site": {"Sec-Fetch-Site": "cross-site"},
    "a-sibling-subdomain": {"Sec-Fetch-Site": "same-site"},  # SameSite lets its cookie through
    "another-origin": {"Origin": "https://evil.example"},  # a browser without Sec-Fetch-*
    "an-opaque-origin": {"Origin": "null"},  # a sandboxed frame, a data: URL
}
CROSS_SITE = [pytest.param(headers, id=name) for name, headers in CROSS_SITE_HEADERS.items()]


def key_works(api: Api, key: str) -> bool:
    with api.client(key=key) as http:
        return http.get("/api/tipos-documento/").status_code == 200


def test_revoking_takes_a_post_from_the_admin_s_own_origin(guarded: Api, engine: Engine) -> None:
    key = new_key(engine, ["read"])
    key_id = key_id_of(engine, key)
    admin = login(guarded)
    try:
        # The list's action link (a GET) only asks for confirmation; it was the revocation.
        confirm = admin.get("/admin/api-key/action/revocar", params={"pks": key_id})
        assert confirm.status_code == 200 and 'method="post"' in confirm.text
        assert admin.get("/admin/api-key/revocar").status_code == 405
        assert key_works(guarded, key)

        for headers in CROSS_SITE_HEADERS.values():
            forged = admin.post("/admin/api-key/revocar", data={"pks": key_id}, headers=headers)
            assert forged.status_code == 403, headers
        with guarded.client(key=None, follow_redirects=False) as no_cookie:
            anonymous = no_cookie.post("/admin/api-key/revocar", data={"pks": key_id})
        assert anonymous.status_code == 302
        assert anonymous.headers["location"].endswith("/admin/login")
        assert key_works(guarded, key)

        own_origin = {"Origin": guarded.url, "Sec-Fetch-Site": "same-origin"}
        revoked = admin.post("/admin/api-key/revocar", data={"pks": key_id}, headers=own_origin)
        assert revoked.status_code == 303
        assert not key_works(guarded, key)
    finally:
        admin.close()


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_no_other_site_may_post_a_login(guarded: Api, headers: dict[str, str]) -> None:
    forged = attempt(
        guarded, "10.7.0.1", SETTINGS.admin_username, SETTINGS.admin_password, **headers
    )
    assert forged.status_code == 403 and "set-cookie" not in forged.headers


@pytest.mark.parametrize(
    ("method", "path", "form"),
    [
        ("GET", "/admin/api-key/action/revocar?pks=nope", None),
        ("GET", "/admin/api-key/action/revocar?pks=", None),
        ("POST", "/admin/api-key/revocar", {"pks": "nope"}),
        ("POST", "/admin/api-key/revocar", {"pks": f"{uuid.uuid4()},1 OR 1=1"}),
        ("POST", "/admin/api-key/revocar", {}),
        ("GET", "/admin/api-key/details/nope", None),
        ("GET", "/admin/cliente/details/abc", None),
        ("GET", "/admin/cliente/edit/abc", None),
        ("GET", "/admin/compra/details/1x", None),
    ],
)
def test_a_malformed_id_is_a_400(
    guarded: Api, method: str, path: str, form: dict[str, str] | None
) -> None:
    admin = login(guarded)
    try:
        answer = admin.request(method, path, data=form)
        assert answer.status_code == 400, answer.text[-1000:]
        assert admin.get("/admin/api-key/list").status_code == 200  # the connection lives on
    finally:
        admin.close()


def test_without_redis_there_is_no_login(guarded: Api, private_redis: PrivateRedis) -> None:
    """Fail closed: failures cannot be counted nor sessions checked, so no one gets in."""
    admin = login(guarded)
    private_redis.process.stop()
    try:
        assert admin.get("/admin/api-key/list").status_code == 302
        refused = attempt(guarded, "10.8.0.1", SETTINGS.admin_username, SETTINGS.admin_password)
        assert refused.status_code == 503 and "set-cookie" not in refused.headers
        assert int(refused.headers["retry-after"]) > 0
    finally:
        admin.close()
        private_redis.restart()
    back = attempt(guarded, "10.8.0.1", SETTINGS.admin_username, SETTINGS.admin_password)
    assert back.status_code == 302


def key_id_of(engine: Engine, key: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT id FROM api_keys WHERE key_hash = :hash"),
                {"hash": api_keys.hash_key(key)},
            ).scalar_one()
        )

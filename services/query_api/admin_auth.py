"""Who may use /admin: the login and its throttle, sessions that a logout or a password change
end, cookies that stay on HTTPS, and no change made from another site.

- Failed logins are counted in Redis per client address and per username over a fixed window
  (ADMIN_LOGIN_MAX_FAILURES in ADMIN_LOGIN_WINDOW_SECONDS); past it, 429 with `Retry-After`, even
  for the right password. Every attempt counts until it succeeds, so concurrent guesses cannot
  slip past the limit; a success clears both counters. Failures are logged without the password.
- The signed session cookie holds a random session generation that must match the one in Redis,
  under a key derived from the credentials: a logout deletes it (every copy of the cookie stops
  working, not just the browser's), and a new ADMIN_PASSWORD names another key (a password
  change ends every session). Without Redis there is no login (503): fail closed.
- The cookie is Secure whenever the request came over HTTPS (the scheme uvicorn sets from
  X-Forwarded-Proto when the proxy is in FORWARDED_ALLOW_IPS), and always in production;
  SameSite=Strict.
- Cross-site request forgery: sqladmin has no tokens. Every change is a POST or DELETE (the API
  key revocation included), the cookie is SameSite=Strict (another site's request carries no
  session), and `SameOriginChanges` refuses a change that the browser says comes from another
  origin (`Sec-Fetch-Site`, or else `Origin`): that covers a sibling subdomain, which SameSite
  counts as the same site.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqladmin.authentication import AuthenticationBackend
from sqladmin.templating import Jinja2Templates
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "clientes_admin"
SESSION_MAX_AGE_SECONDS = 8 * 3600
# Usernames are whatever a client types: logged and counted, but cut to a sane length.
USERNAME_LOGGED_CHARS = 64
REDIS_ERRORS = (RedisError, OSError)

# For each key (address, username): INCR and, for its window's first attempt, EXPIRE; the answer
# is 0, or the seconds until the window of a key over the limit ends. Atomic: one round trip.
_COUNT_ATTEMPT = """
local wait = 0
for _, key in ipairs(KEYS) do
  local attempts = redis.call('INCR', key)
  if attempts == 1 then redis.call('EXPIRE', key, ARGV[2]) end
  if attempts > tonumber(ARGV[1]) then wait = math.max(wait, redis.call('TTL', key)) end
end
return wait
"""


class LoginThrottle:
    def __init__(self, redis: Callable[[], Redis], max_failures: int, window_seconds: int) -> None:
        self._redis = redis
        self._max_failures = max_failures
        self._window_seconds = window_seconds

    @staticmethod
    def _keys(address: str, username: str) -> list[str]:
        # A hash: the username is arbitrary client input, of any length.
        user = hashlib.sha256(username.encode()).hexdigest()[:32]
        return [f"admin-login:address:{address}", f"admin-login:user:{user}"]

    async def attempt(self, address: str, username: str) -> int:
        """Count an attempt; 0 if it may go on, else the seconds to wait (for `Retry-After`)."""
        script = self._redis().register_script(_COUNT_ATTEMPT)
        wait = await script(
            keys=self._keys(address, username), args=[self._max_failures, self._window_seconds]
        )
        return max(int(wait), 0)

    async def succeeded(self, address: str, username: str) -> None:
        await self._redis().delete(*self._keys(address, username))


class SessionGenerations:
    """The generation every live admin session carries, kept in Redis."""

    def __init__(self, redis: Callable[[], Redis], settings: Settings) -> None:
        self._redis = redis
        # Named after the credentials (keyed with SECRET_KEY, so Redis never holds anything a
        # password could be guessed from offline): another password, another key, no session.
        credentials = f"{settings.admin_username}\0{settings.admin_password}".encode()
        digest = hmac.new(settings.secret_key.encode(), credentials, hashlib.sha256)
        self._key = f"admin-session:{digest.hexdigest()[:32]}"

    async def start(self) -> str:
        """The current generation, made if there is none; it lives as long as a new session."""
        async with self._redis().pipeline(transaction=True) as pipeline:
            pipeline.set(self._key, secrets.token_urlsafe(24), nx=True)
            pipeline.expire(self._key, SESSION_MAX_AGE_SECONDS)
            pipeline.get(self._key)
            *_, generation = await pipeline.execute()
        return _text(generation)

    async def current(self) -> str | None:
        generation = await self._redis().get(self._key)
        return None if generation is None else _text(generation)

    async def end_all(self) -> None:
        await self._redis().delete(self._key)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def client_address(request: Request) -> str:
    """The client's address: uvicorn has already taken it from X-Forwarded-For when the
    connection came from a trusted proxy (FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else "unknown"


class AdminLogin(AuthenticationBackend):
    def __init__(self, settings: Settings, redis: Callable[[], Redis], base_url: str) -> None:
        super().__init__(secret_key=settings.secret_key)
        self.middlewares = [
            Middleware(
                SessionCookies,
                always_secure=settings.environment == "production",
                secret_key=settings.secret_key,
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_MAX_AGE_SECONDS,
                path=base_url,
                same_site="strict",
            )
        ]
        self._username = settings.admin_username.encode()
        self._password = settings.admin_password.encode()
        self._throttle = LoginThrottle(
            redis, settings.admin_login_max_failures, settings.admin_login_window_seconds
        )
        self._sessions = SessionGenerations(redis, settings)
        self.templates: Jinja2Templates | None = None  # sqladmin's, set once the Admin exists

    async def login(self, request: Request) -> Response | bool:
        form = await request.form()
        username = str(form.get("username", ""))
        password = str(form.get("password", "")).encode()
        address = client_address(request)
        logged = {"client": address, "username": username[:USERNAME_LOGGED_CHARS]}
        try:
            wait = await self._throttle.attempt(address, username)
            if wait:
                log.warning("admin login refused: too many failures", extra=logged)
                return await self._refused(request, 429, "Demasiados intentos fallidos.", wait)
            # Both always run (&, not "and"), in constant time: timing never tells which failed.
            valid = hmac.compare_digest(username.encode(), self._username) & hmac.compare_digest(
                password, self._password
            )
            if not valid:
                log.warning("admin login failed", extra=logged)
                return False
            await self._throttle.succeeded(address, username)
            generation = await self._sessions.start()
        except REDIS_ERRORS as error:
            log.warning("admin login unavailable: Redis %s", type(error).__name__, extra=logged)
            return await self._refused(request, 503, "Inicio de sesión no disponible.", 30)
        request.session.clear()
        request.session.update(user_id=username, generation=generation)
        log.info("admin login", extra=logged)
        return True

    async def logout(self, request: Request) -> bool:
        # Only a live session ends the sessions: a forged logout link carries none.
        if await self.authenticate(request):
            try:
                await self._sessions.end_all()
            except REDIS_ERRORS as error:
                log.warning("admin logout: Redis %s", type(error).__name__)
            log.info("admin logout", extra={"client": client_address(request)})
        request.session.clear()
        return False  # sqladmin then redirects to the login page

    async def authenticate(self, request: Request) -> bool:
        user_id = request.session.get("user_id")
        generation = request.session.get("generation")
        if not (isinstance(user_id, str) and isinstance(generation, str)):
            return False
        if not hmac.compare_digest(user_id.encode(), self._username):
            return False
        try:
            current = await self._sessions.current()
        except REDIS_ERRORS as error:
            log.warning("admin session not checked: Redis %s", type(error).__name__)
            return False
        return current is not None and hmac.compare_digest(current, generation)

    async def _refused(
        self, request: Request, status: int, error: str, retry_after: int
    ) -> Response:
        headers = {"Retry-After": str(retry_after)}
        if self.templates is None:
            return PlainTextResponse(error, status, headers=headers)
        context = {"error": f"{error} Intente de nuevo en {retry_after} s."}
        page = await self.templates.TemplateResponse(
            request, "sqladmin/login.html", context, status_code=status
        )
        page.headers.update(headers)
        return page


class SessionCookies:
    """Starlette's session middleware, with the cookie Secure whenever the request came over
    HTTPS (directly, or through a trusted proxy's X-Forwarded-Proto) and always if asked."""

    def __init__(self, app: ASGIApp, /, *, always_secure: bool, **options: Any) -> None:
        self._plain = SessionMiddleware(app, https_only=always_secure, **options)
        self._secure = SessionMiddleware(app, https_only=True, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sessions = self._secure if scope.get("scheme") in ("https", "wss") else self._plain
        await sessions(scope, receive, send)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def from_another_origin(scope: Scope) -> bool:
    """What the browser says about where a request comes from. Browsers send Sec-Fetch-Site
    (and Origin) with every POST and DELETE; a request without either is not a browser's, so it
    cannot carry an admin's cookie without the admin's own doing."""
    headers = Headers(scope=scope)
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    return origin is not None and origin != f"{scope['scheme']}://{headers.get('host', '')}"


class SameOriginChanges:
    """Refuses (403) a POST, DELETE... that another origin made, before it reaches the admin."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        changes = scope["type"] == "http" and scope["method"] not in SAFE_METHODS
        if changes and from_another_origin(scope):
            client = scope.get("client")
            log.warning(
                "cross-origin admin request refused",
                extra={"client": client[0] if client else "unknown", "path": scope["path"]},
            )
            await PlainTextResponse("Cross-origin request refused", 403)(scope, receive, send)
            return
        await self.app(scope, receive, send)

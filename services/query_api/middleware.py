"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request on the hot path)."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.query_api.problems import Problem, problem_response, unexpected_problem
from shared.logs import request_id_var

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class HttpMiddleware:
    """Acts on HTTP requests (`handle`) and passes anything else (lifespan) straight through.

    `__call__` is a plain function returning the coroutine to await, not a coroutine itself:
    every coroutine frame on a request's await chain is passed through again each time the
    request resumes (after each round trip to PostgreSQL or Redis), so one frame per layer
    instead of two is CPU saved on every request (README, benchmarks: what each layer costs)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] == "http":
            return self.handle(scope, receive, send)
        return self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class ResponseHeadersMiddleware(HttpMiddleware):
    """Every response carries X-Request-ID (the client's when sane, else a new one) and the
    headers the request collected on its way (`request.state.response_headers`, e.g. rate limit),
    error responses included. It is the outermost middleware of ours but Starlette's
    ServerErrorMiddleware sits outside it, so an unhandled error is answered (500) here, with
    the id and inside the request's log context, before it could reach that one.

    `request_id` and `log_context` are always on in the API; only the benchmark turns one off
    (main.Layers), to measure what it costs."""

    def __init__(self, app: ASGIApp, *, request_id: bool = True, log_context: bool = True) -> None:
        super().__init__(app)
        self.request_id = request_id
        self.log_context = log_context

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        collected: dict[str, str] = {}
        state["response_headers"] = collected
        own: list[tuple[bytes, bytes]] = []
        token = None
        if self.request_id:
            request_id = _request_id(scope["headers"])
            state["request_id"] = request_id
            own.append((b"x-request-id", request_id.encode()))
            if self.log_context:
                token = request_id_var.set(request_id)

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(k.lower().encode(), v.encode()) for k, v in collected.items()]
                message["headers"] = [*message.get("headers", []), *own, *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            if started:  # too late for another answer: the server closes the connection
                raise
            answer = problem_response(unexpected_problem(error))
            await answer(scope, receive, send_with_id)
        finally:
            if token is not None:
                request_id_var.reset(token)


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when sane, else a new one."""
    for name, value in headers:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # 32 hex digits, as uuid4().hex, at a third of its cost


class TrailingSlashMiddleware:
    """`/api/clientes/` and `/api/clientes` are the same resource, answered directly (no 307)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        return self.app(scope, receive, send)  # no frame of its own (HttpMiddleware)


MAX_BODY_BYTES = 1024 * 1024
# Bulk exports take lists of up to 100,000 documents (about 6.5 MB of compact JSON, more when
# pretty-printed); every other endpoint keeps MAX_BODY_BYTES.
BULK_EXPORT_PATH = "/api/exportaciones"
MAX_BULK_BODY_BYTES = 16 * 1024 * 1024
MAX_QUERY_BYTES = 4096


def max_body_bytes(path: str) -> int:
    """The body limit of a request to `path` (with or without its trailing slash)."""
    return MAX_BULK_BODY_BYTES if path.rstrip("/") == BULK_EXPORT_PATH else MAX_BODY_BYTES


# Set in the scope by the HTTP protocol (server_limits) when the process holds more connections
# than HTTP_MAX_CONCURRENCY.
OVER_CAPACITY = "clientes.over_capacity"


class RequestLimitsMiddleware(HttpMiddleware):
    """Refuse before any work: 503 past the process's connection bound, 414 for a long query,
    413 for a large body."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get(OVER_CAPACITY):
            busy = Problem(
                503,
                "The server has too many connections open; retry shortly.",
                kind="service-unavailable",
                headers={"Retry-After": "1"},
            )
            await problem_response(busy)(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            await _refuse(
                scope, receive, send, 414, f"The query string exceeds {MAX_QUERY_BYTES} bytes."
            )
            return
        limit = max_body_bytes(scope.get("path", ""))
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await _refuse(scope, receive, send, 413, f"The body exceeds {limit} bytes.")
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # a chunked body with no Content-Length
                raise HTTPException(413, f"The body exceeds {limit} bytes.")
            return message

        await self.app(scope, counting_receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    await problem_response(Problem(status, detail, kind="request-too-large"))(scope, receive, send)


# What a browser app may send, beyond the CORS-safelisted headers.
CORS_ALLOWED_HEADERS = [
    "Authorization",
    "X-API-Key",
    "Content-Type",
    "Prefer",
    "Idempotency-Key",
    "Range",
    "If-Range",
    "If-None-Match",
    "X-Request-ID",
]
# What its script may read of an answer: where a job is, when to look again, the file's name
# and validator, a range's extent, the request id and the quota.
CORS_EXPOSED_HEADERS = [
    "Location",
    "Retry-After",
    "Preference-Applied",
    "Content-Disposition",
    "Content-Length",
    "Content-Range",
    "Accept-Ranges",
    "ETag",
    "X-Request-ID",
    "RateLimit",
    "RateLimit-Policy",
]


def cors_options(origins: list[str]) -> dict[str, Any]:
    """Starlette's CORSMiddleware for `origins` (CORS_ORIGINS). No credentials mode: the API
    is called with a key in a header, never with cookies."""
    return {
        "allow_origins": origins,
        "allow_methods": ["GET", "POST", "DELETE"],
        "allow_headers": CORS_ALLOWED_HEADERS,
        "expose_headers": CORS_EXPOSED_HEADERS,
        "max_age": 600,
    }

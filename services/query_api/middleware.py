"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request on the hot path)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.query_api.problems import Problem, problem_response, unexpected_problem
from shared.logs import request_id_var

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class HttpMiddleware:
    """Acts on HTTP requests (`handle`) and passes anything else (lifespan) straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class ResponseHeadersMiddleware(HttpMiddleware):
    """Every response carries X-Request-ID (the client's when sane, else a new one) and the
    headers the request collected on its way (`request.state.response_headers`, e.g. rate limit),
    error responses included. It is the outermost middleware of ours but Starlette's
    ServerErrorMiddleware sits outside it, so an unhandled error is answered (500) here, with
    the id and inside the request's log context, before it could reach that one."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _VALID_REQUEST_ID.fullmatch(candidate):
                    request_id = candidate
                break
        request_id = request_id or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        collected: dict[str, str] = {}
        state["response_headers"] = collected
        token = request_id_var.set(request_id)
        header = (b"x-request-id", request_id.encode())

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                extra = [(k.lower().encode(), v.encode()) for k, v in collected.items()]
                message["headers"] = [*message.get("headers", []), header, *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as error:
            if started:  # too late for another answer: the server closes the connection
                raise
            answer = problem_response(unexpected_problem(error))
            await answer(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class TrailingSlashMiddleware:
    """`/api/clientes/` and `/api/clientes` are the same resource, answered directly (no 307)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
            if scope.get("raw_path"):
                scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


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

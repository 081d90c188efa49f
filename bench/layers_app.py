"""The API with one layer switched off, or the bare floor: what `make bench ONLY=layers` serves.

BENCH_LAYERS names the variant (VARIANTS): `full` is the API as deployed; each `no-…` is the
same app with one layer off, through main.create_app's `layers` parameter (or, for the fast
lane, its setting); `floor` is a bare ASGI callable doing only what a `buscar` request must:
read the parameters, the rate limiter (a place from its lease, ratelimit.py) and the lookup
query on the same psycopg pool, the JSON document sent as is. Run as
`python -m bench.layers_app`, through `services.query_api.__main__.main` (uvicorn + httptools,
the API's own server settings); the granian A/B serves the same `create_app` from granian's
command line (bench/layers.py), with BENCH_SERVER=granian so that the proxy headers are read as
uvicorn reads them.

This module, not a setting, is the only way to run the API with a layer off: a deployment that
sets BENCH_LAYERS by mistake still runs `services.query_api`, which never reads it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from redis.asyncio import Redis
from starlette.requests import Request

from services.query_api import __main__ as api_server
from services.query_api import auth, main
from services.query_api.clientes import fast_lane, repository
from services.query_api.problems import Problem
from services.query_api.ratelimit import RateLimiter
from shared import db, logs
from shared.settings import Settings, get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

FULL = "full"
FLOOR = "floor"
# The key check off: every request is this key's (the bench key's quota), still counted.
_ANY_KEY = auth.Principal(uuid.UUID(int=0), "bench", frozenset({"read"}), 100_000_000)


async def _no_key_check(request: Request, scope: str) -> auth.Principal:
    await auth.count_request(request, _ANY_KEY)
    return _ANY_KEY


async def _no_rate_limit(request: Request, scope: str) -> auth.Principal:
    principal = await auth.identify(request)
    if scope not in principal.scopes:  # what auth.authorize checks besides
        raise Problem(403, "forbidden", kind="forbidden")
    return principal


# name → (what is off, the layers it runs with; None: the fast lane off, every layer on).
VARIANTS: dict[str, tuple[str, main.Layers | None]] = {
    FULL: ("nothing: the API as deployed", main.Layers()),
    "no-key-check": ("the API-key check", main.Layers(authorize=_no_key_check)),
    "no-rate-limit": ("the rate limiter", main.Layers(authorize=_no_rate_limit)),
    "no-metrics": ("the Prometheus metrics middleware", main.Layers(metrics=False)),
    "no-request-id": (
        "the request id (and so its log context)",
        main.Layers(request_id=False, log_context=False),
    ),
    "no-log-context": ("the JSON log context (request id kept)", main.Layers(log_context=False)),
    "no-fast-lane": ("the fast lane (the FastAPI route answers)", None),
}
DESCRIPTIONS = {
    **{name: off for name, (off, _) in VARIANTS.items()},
    FLOOR: "bare ASGI: the same rate limiter and pool query, nothing else",
}


def create_app() -> App:
    variant = os.environ.get("BENCH_LAYERS", FULL)
    settings = get_settings()
    app: App
    if variant == FLOOR:
        app = _floor(settings)
    else:
        _, layers = VARIANTS[variant]
        if layers is None:
            settings = settings.model_copy(update={"buscar_fast_lane": False})
        app = main.create_app(settings, layers or main.Layers())
    if os.environ.get("BENCH_SERVER") == "granian":
        from granian.utils.proxies import wrap_asgi_with_proxy_headers

        # uvicorn's proxy_headers=True, which trusts FORWARDED_ALLOW_IPS (127.0.0.1 unset).
        trusted = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
        app = wrap_asgi_with_proxy_headers(app, trusted)
    return app


def _floor(settings: Settings) -> App:
    logs.configure(settings.log_level)
    held: dict[str, Any] = {}
    not_found = _answer(404, b"")
    ready = _answer(200, b"")

    async def lifespan(receive: Receive, send: Send) -> None:
        await receive()  # lifespan.startup
        pool = db.async_lookup_pool(settings)
        await pool.open(wait=False)
        redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
        held.update(pool=pool, redis=redis, limiter=RateLimiter(redis, 100_000_000))
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await redis.aclose()
        await pool.close()
        await send({"type": "lifespan.shutdown.complete"})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        arguments = (
            fast_lane.plainly_valid(scope["query_string"])
            if scope["path"].rstrip("/") == fast_lane.PATH
            else None
        )
        if arguments is None:
            await _send(send, ready if scope["path"] == "/ready" else not_found, b"")
            return
        await held["limiter"].consume(str(_ANY_KEY.key_id), None)
        body = await repository.find_cliente(held["pool"], **arguments)
        if body is None:
            await _send(send, not_found, b"")
            return
        content = body.encode()
        start = _answer(200, content, b"application/json")
        await _send(send, start, content)

    return app


def _answer(status: int, body: bytes, content_type: bytes = b"text/plain") -> Message:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers}


async def _send(send: Send, start: Message, body: bytes) -> None:
    await send(start)
    await send({"type": "http.response.body", "body": body})


if __name__ == "__main__":
    api_server.main("bench.layers_app:create_app")

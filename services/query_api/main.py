"""The FastAPI application: wiring only. Run with `python -m services.query_api`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI
from redis.asyncio import Redis
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Message, Scope

from services.query_api import (
    admin,
    api_keys,
    auth,
    clientes,
    health,
    jobs,
    metrics,
    openapi,
    problems,
    web,
    webhooks,
)
from services.query_api.auth import ApiKeyCache
from services.query_api.auth_failures import AuthFailureLimiter
from services.query_api.clientes import fast_lane
from services.query_api.jobs import events
from services.query_api.middleware import (
    RequestLimitsMiddleware,
    ResponseHeadersMiddleware,
    TrailingSlashMiddleware,
    cors_options,
)
from services.query_api.ratelimit import RateLimiter
from shared import db, logs
from shared.settings import Settings, get_settings


async def _build_routes(app: FastAPI) -> None:
    """FastAPI builds its routes' dependency and validation machinery at the first request that
    walks them: ~0.15 s of CPU in each process, in the event loop, holding up every request
    behind that first one (measured: a process's first export POST took 0.12–0.15 s, its next
    0.02). A request that matches no route walks them all, so one is sent to the router at
    start-up; it answers 404 to nobody."""

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        pass

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/ start-up: no route has this path",
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    await app.router(scope, receive, send)


def _freeze_startup_objects() -> None:
    """Moves every object alive after start-up (modules, the app, its routes and models, the
    pools: ~160,000 of them) out of the collector's sight for good. A full collection walked all
    of them, holding this process's requests for ~190 ms of CPU (measured on the bench machine);
    after the freeze it walks only what requests made since. Collected first, so no garbage is
    kept forever."""
    gc.collect()
    gc.freeze()


@dataclass(frozen=True, slots=True)
class Layers:
    """What the API does around each request besides answering it. The API always runs with
    every layer (the default); only the benchmark's app module (bench/layers_app.py) passes
    others, each with one layer off, to measure what that layer costs. No setting reaches this.

    `authorize` is the fast lane's key check and rate-limit call (auth.authorize)."""

    authorize: fast_lane.Authorize = auth.authorize
    metrics: bool = True
    request_id: bool = True
    log_context: bool = True


def create_app(settings: Settings | None = None, layers: Layers | None = None) -> FastAPI:
    settings = settings or get_settings()
    layers = layers or Layers()
    logs.configure(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = db.async_engine(settings)
        app.state.settings = settings
        app.state.engine = engine
        app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Not waiting: the API starts (and answers 503) while PostgreSQL is still coming up.
        app.state.lookup_pool = db.async_lookup_pool(settings)
        await app.state.lookup_pool.open(wait=False)
        app.state.redis = Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        # A pool of their own for long polls, one connection per wait at most: however many
        # wait, the rate limiter and /ready keep theirs.
        app.state.wait_redis = Redis.from_url(
            settings.redis_url,
            socket_timeout=2,
            socket_connect_timeout=2,
            max_connections=settings.long_polls_max,
        )
        app.state.long_polls = events.LongPolls(
            settings.long_polls_per_key, settings.long_polls_max
        )
        if settings.api_bootstrap_key:
            await api_keys.ensure_bootstrap_key(engine, settings.api_bootstrap_key)
        app.state.rate_limiter = RateLimiter(app.state.redis, settings.rate_limit_per_minute)
        app.state.auth_failures = AuthFailureLimiter(settings.auth_failures_per_minute)
        app.state.api_key_cache = ApiKeyCache(
            engine, settings.database_url, settings.api_key_cache_seconds
        )
        app.state.api_key_cache.start()
        await _build_routes(app)
        _freeze_startup_objects()
        try:
            yield
        finally:
            await app.state.api_key_cache.stop()
            await app.state.redis.aclose()
            await app.state.wait_redis.aclose()
            await app.state.lookup_pool.close()
            await engine.dispose()

    app = FastAPI(
        title="Clientes",
        version="1.0.0",
        description="Customer lookups, exports and loyalty reports.",
        lifespan=lifespan,
        redirect_slashes=False,
        # FastAPI's own OpenTelemetry, unused here (metrics are Prometheus', logs our JSON): on,
        # it looks up the global providers on every request, which the profile of `buscar`
        # found costing more than the request id (README, benchmarks).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    problems.install(app)
    openapi.install(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    # Each router carries its own /api prefix: FastAPI applies that one at declaration, so the
    # route templates (metrics labels) are the full paths; include-time prefixes are not.
    for router in _api_routers():
        app.include_router(router)
    # Not /api routes: the SAC page at / (public assets) and the back office at /admin (login).
    web.install(app)
    admin.install(app, settings)
    # Outermost last: the request id must wrap everything, including slash normalisation; the
    # lookup fast lane is innermost, so its answers get every header and metric the others add.
    if settings.buscar_fast_lane:
        app.add_middleware(fast_lane.BuscarFastLane, authorize=layers.authorize)
    if layers.metrics:
        app.add_middleware(metrics.MetricsMiddleware)
    app.add_middleware(TrailingSlashMiddleware)
    app.add_middleware(RequestLimitsMiddleware)
    if settings.cors_origin_list:  # inside the request id: a preflight's answer carries one too
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origin_list))
    app.add_middleware(
        ResponseHeadersMiddleware, request_id=layers.request_id, log_context=layers.log_context
    )
    return app


def _api_routers() -> list[APIRouter]:
    """Each domain contributes one router; they are listed here and nowhere else."""
    return [clientes.router, api_keys.router, jobs.router, webhooks.router]

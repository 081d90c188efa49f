"""Prometheus metrics of the API: requests by route template and status, latency, pool usage,
jobs created by type (the workers serve their own: services/export_worker/metrics.py).

With several server processes (WEB_CONCURRENCY > 1) prometheus_client's multiprocess mode is
used (PROMETHEUS_MULTIPROC_DIR, set by `python -m services.query_api`), so `/metrics` reports the
sum over processes whichever process answers.
"""

from __future__ import annotations

import os
import time

from fastapi import APIRouter, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from psycopg_pool import AsyncConnectionPool
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.query_api.middleware import HttpMiddleware
from shared.jobs import JobType

REQUESTS = Counter(
    "clientes_http_requests_total", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "clientes_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POOL = Gauge(
    "clientes_db_pool_connections",
    "Database connections of this process by pool (lookups: psycopg; jobs: SQLAlchemy) and state.",
    ["pool", "state"],
    multiprocess_mode="livesum",
)

JOBS_CREATED = Counter(
    "clientes_jobs_created_total",
    "Jobs created, by type (an Idempotency-Key replay creates none).",
    ["type"],
)
for _type in JobType:  # every series exists from the start, at zero
    JOBS_CREATED.labels(_type)

router = APIRouter(tags=["health"])


class MetricsMiddleware(HttpMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        # Each series' child, kept: `labels()` validates and locks on every call. Bounded like
        # the labels (route templates, methods, statuses).
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The template (/api/clientes/{cliente_id}), never the raw path: bounded label values.
            route = getattr(scope.get("route"), "path", "unmatched")
            labels = (scope["method"], route, status)
            series = self._series.get(labels)
            if series is None:
                series = (
                    REQUESTS.labels(scope["method"], route, str(status)),
                    LATENCY.labels(scope["method"], route),
                )
                self._series[labels] = series
            series[0].inc()
            series[1].observe(time.perf_counter() - start)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    engine: AsyncEngine = request.app.state.engine
    pool = engine.pool
    if isinstance(pool, QueuePool):
        POOL.labels("jobs", "in_use").set(pool.checkedout())
        POOL.labels("jobs", "idle").set(pool.checkedin())
    lookups: AsyncConnectionPool = request.app.state.lookup_pool
    stats = lookups.get_stats()
    POOL.labels("lookups", "in_use").set(stats["pool_size"] - stats["pool_available"])
    POOL.labels("lookups", "idle").set(stats["pool_available"])
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

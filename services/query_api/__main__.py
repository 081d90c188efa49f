"""Production entry point: `python -m services.query_api` (compose, `make run`, tests, bench)."""

from __future__ import annotations

import os
import tempfile

import uvicorn

from services.query_api.server_limits import BoundedHttpProtocol
from shared.settings import get_settings

# How long uvicorn's supervisor waits for a worker process to answer its health ping before it
# kills and replaces it. Its default, 5 s, is shorter than a spawned worker takes to import the
# app on a busy 2-core machine (40 s seen at load average 13): every worker was killed before it
# could answer, and replaced, forever, so the API never served. A worker that has started
# answers from a thread of its own within milliseconds, hung or not: only start-up needs this.
WORKER_HEALTHCHECK_SECONDS = 120


def main(app_factory: str = "services.query_api.main:create_app") -> None:
    """`app_factory` is swapped only by the benchmark's HTTP ceiling (bench/constant_app.py),
    so that it is served with exactly these production settings."""
    settings = get_settings()
    workers = int(os.environ.get("WEB_CONCURRENCY", "1"))
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes: metrics go through files so /metrics sums them all.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="clientes-metrics-")
    uvicorn.run(
        app_factory,
        factory=True,
        host=os.environ.get("HOST", "0.0.0.0"),  # noqa: S104 (a container's service port)
        port=settings.port,
        workers=workers,
        loop="uvloop",
        # httptools, with a deadline for a request's headers (slowloris) and a bound on
        # connections (past HTTP_MAX_CONCURRENCY, 503); idle keep-alive connections close.
        http=BoundedHttpProtocol,
        timeout_keep_alive=settings.http_keepalive_seconds,
        access_log=False,
        proxy_headers=True,
        log_config=None,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )


if __name__ == "__main__":
    main()

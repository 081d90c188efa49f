"""Production entry point: `python -m services.query_api` (compose, `make run`, tests, bench)."""

from __future__ import annotations

import os

import uvicorn

from shared.settings import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        "services.query_api.main:create_app",
        factory=True,
        host=os.environ.get("HOST", "0.0.0.0"),  # noqa: S104 (a container's service port)
        port=settings.port,
        workers=int(os.environ.get("WEB_CONCURRENCY", "1")),
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=True,
        log_config=None,
    )


if __name__ == "__main__":
    main()

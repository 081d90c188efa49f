"""The HTTP ceilings: the API's production server settings serving one constant JSON body.

The body is a real `buscar` answer saved by the harness (BENCH_CONSTANT_BODY), so a ceiling
moves the same bytes per request as the lookup it is compared with. Two ceilings
(BENCH_CONSTANT_APP): `fastapi`, a FastAPI app whose one route returns the body (what the
framework itself can serve: the issue's reference ceiling), and `asgi`, a bare ASGI callable
(what uvicorn alone can serve). Run as `python -m bench.constant_app`; it goes through
`services.query_api.__main__.main`, so worker count, event loop, HTTP parser and logging are
exactly the API's.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response

from services.query_api import __main__ as api_server

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def create_app() -> App:
    body = Path(os.environ["BENCH_CONSTANT_BODY"]).read_bytes()
    if os.environ.get("BENCH_CONSTANT_APP", "fastapi") == "fastapi":
        return _fastapi_app(body)
    return _asgi_app(body)


def _fastapi_app(body: bytes) -> App:
    app = FastAPI()

    @app.get("/")
    async def constant() -> Response:
        return Response(body, media_type="application/json")

    return app


def _asgi_app(body: bytes) -> App:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    payload = {"type": "http.response.body", "body": body}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send(start)
        await send(payload)

    return app


if __name__ == "__main__":
    api_server.main("bench.constant_app:create_app")

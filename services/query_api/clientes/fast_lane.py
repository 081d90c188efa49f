"""The fast lane of the hottest request, `GET /api/clientes/buscar` with valid parameters.

FastAPI's request machinery (routing, dependency resolution, parameter validation) costs more
CPU than the lookup itself; high-volume clients send this one request all day. So a request
whose parameters are plainly valid is answered here, from ASGI, by the same code the route runs
after validation (`endpoints.buscar_response`, `auth.authorize`), inside the same middleware
(request id, rate-limit headers, metrics). Anything else (a missing, repeated, unknown or
out-of-range parameter) goes on to the FastAPI route, which stays the one description of the
endpoint (OpenAPI) and the one place that words validation errors. `BUSCAR_FAST_LANE=false`
leaves every request to the route. README: benchmarks (what the lane saves, measured).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from services.query_api import auth
from services.query_api.clientes import endpoints
from services.query_api.problems import DATABASE_ERRORS, Problem, database_problem, problem_response

PATH = "/api/clientes/buscar"
LANE_LOG_MESSAGE = "buscar answered by the fast lane"

log = logging.getLogger(__name__)

Authorize = Callable[[Request, str], Awaitable[auth.Principal]]


class BuscarFastLane:
    def __init__(self, app: ASGIApp, *, authorize: Authorize = auth.authorize) -> None:
        """`authorize` is the route's own check in the API; only the benchmark passes another
        (main.Layers), to measure what the key check and the rate limiter cost."""
        self.app = app
        self.authorize = authorize
        # The route's own object, so metrics label these requests with its template.
        self.route = next(
            route
            for route in endpoints.router.routes
            if isinstance(route, APIRoute) and route.endpoint is endpoints.buscar_cliente
        )

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function, as middleware.HttpMiddleware's: no coroutine frame of its own.
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "GET":
            return self.app(scope, receive, send)
        arguments = plainly_valid(scope["query_string"])
        if arguments is None:
            return self.app(scope, receive, send)
        return self.answer(scope, receive, send, arguments)

    async def answer(
        self, scope: Scope, receive: Receive, send: Send, arguments: dict[str, Any]
    ) -> None:
        scope["route"] = self.route
        # DEBUG only (free at INFO): tells this path from the route's, whose answer is the same.
        log.debug(LANE_LOG_MESSAGE)
        request = Request(scope, receive)
        pool: AsyncConnectionPool = scope["app"].state.lookup_pool
        try:
            await self.authorize(request, "read")
            response = await endpoints.buscar_response(request, pool, **arguments)
        except Problem as problem:
            response = problem_response(problem)
        except DATABASE_ERRORS as error:
            response = problem_response(database_problem(request, error))
        await response(scope, receive, send)


_TEXT_PARAMETERS = {"tipo_documento": "codigo", "numero_documento": "numero_documento"}
_INT_PARAMETERS = {
    "tipo_documento_id": (1, endpoints.SMALLINT_MAX),
    "compras_limit": (0, endpoints.COMPRAS_LIMIT_MAX),
}


def plainly_valid(query_string: bytes) -> dict[str, Any] | None:
    """`buscar_response`'s arguments, or None when the route must judge the parameters.

    Decoded as Starlette decodes them; accepted only within the route's own bounds, so the
    lane never answers what the route would refuse."""
    arguments: dict[str, Any] = {
        "codigo": None,
        "tipo_documento_id": None,
        "compras_limit": endpoints.COMPRAS_LIMIT_DEFAULT,
    }
    seen = set()
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return None
        seen.add(name)
        if name in _TEXT_PARAMETERS:
            if not 1 <= len(value) <= endpoints.DOCUMENTO_MAX_LENGTH:
                return None
            arguments[_TEXT_PARAMETERS[name]] = value
        elif name in _INT_PARAMETERS:
            low, high = _INT_PARAMETERS[name]
            if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
                return None
            arguments[name] = int(value)
        else:
            return None
    by_id, by_code = "tipo_documento_id" in seen, "tipo_documento" in seen
    if by_id == by_code or "numero_documento" not in seen:
        return None
    return arguments

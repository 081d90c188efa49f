"""RFC 9457 problem details: the one error format of the whole API.

Endpoints raise `Problem` (or a subclass); FastAPI's own errors and database outages are mapped
here too, so no handler anywhere builds an error body by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://clientes.example/problems/"


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extensions = extensions


class NotFound(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(404, detail, kind="not-found")


class BadRequest(Problem):
    def __init__(self, detail: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(400, detail, kind="invalid-parameters")
        if errors:
            self.extensions["errors"] = errors


def problem_response(problem: Problem) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem.kind if problem.kind else "about:blank",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        **problem.extensions,
    }
    return Response(
        orjson.dumps(body), problem.status, headers=problem.headers, media_type=PROBLEM_MEDIA_TYPE
    )


def _field_name(location: tuple[Any, ...]) -> str:
    # ("query", "limit") -> "limit"
    # ("body", "documentos", 3, "tipo_documento") -> "documentos[3].tipo_documento"
    name = ""
    for part in (
        location[1:]
        if location and location[0] in {"query", "path", "body", "header"}
        else location
    ):
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or str(location[0] if location else "body")


def validation_problem(error: RequestValidationError) -> Problem:
    errors = [
        {"field": _field_name(tuple(item.get("loc", ()))), "message": str(item.get("msg", ""))}
        for item in error.errors()
    ]
    in_body = any(tuple(item.get("loc", ()))[:1] == ("body",) for item in error.errors())
    # A malformed query or path is a bad request; a well-formed body that breaks the rules is 422.
    status = 422 if in_body else 400
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return Problem(status, detail, kind="validation-error", errors=errors)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(exc))

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(Problem(exc.status_code, detail, headers=headers))

    @app.exception_handler(PoolTimeoutError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(psycopg.Error)
    @app.exception_handler(PoolTimeout)  # one handler for each of DATABASE_ERRORS
    async def _database(request: Request, exc: Exception) -> Response:
        return problem_response(database_problem(request, exc))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return problem_response(unexpected_problem(exc))


def unexpected_problem(exc: BaseException) -> Problem:
    """An error no handler knows: logged with its traceback, a bare 500 for the client."""
    if isinstance(exc, ClientDisconnect):
        # The client hung up while its body was being read: nothing of ours failed, and there
        # is nobody to answer (the 400 goes nowhere).
        log.info("client disconnected before its request body arrived")
        return Problem(400, "The request body did not arrive.", kind="client-disconnected")
    log.exception("unhandled error", exc_info=exc)
    return Problem(500, "Unexpected error.", kind="internal")


DATABASE_ERRORS = (PoolTimeoutError, DBAPIError, psycopg.Error, PoolTimeout)


def database_problem(request: Request, exc: Exception) -> Problem:
    """A database error as the client should see it: 503 for an outage, 400/422 for a value
    PostgreSQL cannot take, 500 (logged) for anything else."""
    # SQLAlchemy (jobs, keys) wraps the driver's error; the lookups' pool raises it bare.
    driver_error = exc.orig if isinstance(exc, DBAPIError) else exc
    if _is_nul_in_text(driver_error):
        return _nul_in_text_problem(request)
    if not _is_outage(exc, driver_error):
        log.exception("database error", exc_info=exc)
        return Problem(500, "Unexpected database error.", kind="internal")
    log.warning("database unavailable: %s", type(driver_error).__name__)
    return Problem(
        503,
        "The database is unavailable; try again shortly.",
        kind="service-unavailable",
        headers={"Retry-After": "5"},
    )


def _is_outage(error: Exception, driver_error: BaseException | None) -> bool:
    """No connection to be had, or the one in use broke: the server's state, not the query's."""
    if isinstance(error, PoolTimeoutError | PoolTimeout):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(driver_error, psycopg.OperationalError)


def _is_nul_in_text(driver_error: BaseException | None) -> bool:
    """psycopg refused to send a text of the request that holds NUL, which PostgreSQL text
    cannot (a DataError raised before reaching the server, so without SQLSTATE)."""
    return (
        isinstance(driver_error, psycopg.DataError)
        and driver_error.sqlstate is None
        and "NUL" in str(driver_error)
    )


def _nul_in_text_problem(request: Request) -> Problem:
    # The request's fault, not the server's; like every validation error, 400 for the query
    # string and 422 for a body. The value itself is neither logged nor echoed (it may be PII).
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    detail = "A value of this request cannot be used: text must not contain NUL characters."
    return Problem(422 if has_body else 400, detail, kind="validation-error")

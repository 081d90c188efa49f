"""The OpenAPI description of what the API really answers, not only of its happy paths.

FastAPI documents each route's success and a JSON 422 of its own shape. The API answers more,
the same way everywhere: RFC 9457 problem+json errors (400 for a bad query/path/header or a body
that cannot be parsed, 422 for a body that breaks the rules), 401/403/429 from the API-key
check, 413/414 from the request limits, 503 when the database is down, `X-Request-ID` on every
response and the rate-limit headers of the key. Those come from middleware and shared
dependencies, so they are described here, once, from the routes themselves; a route only
declares what is its own (a 404, a 409, the headers of a 202).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from services.query_api import auth, middleware, problems

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Validation errors: which field, and what is wrong with it.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
PROBLEM_CONTENT = {
    problems.PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <key>`"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}
STRING = {"schema": {"type": "string"}}
REQUEST_ID_HEADER = {
    "X-Request-ID": {
        "description": "The request's id (the client's own when it sent a sane one).",
        "required": True,
        **STRING,
    }
}
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": 'The key\'s quota, e.g. `"default";q=6000;w=60`.',
        **STRING,
    },
    "RateLimit": {"description": 'What is left of it, e.g. `"default";r=5999;t=42`.', **STRING},
}
RETRY_AFTER = {"description": "Seconds to wait before trying again.", "required": True, **STRING}

# Errors every route can answer, whatever it does.
LIMIT_ERRORS = {
    413: f"The body exceeds {middleware.MAX_BODY_BYTES} bytes.",
    414: f"The query string exceeds {middleware.MAX_QUERY_BYTES} bytes.",
}
# Errors of every route behind the API-key check (`auth.authenticate`).
AUTH_ERRORS: dict[int, dict[str, Any]] = {
    401: {
        "description": "No API key, or one that is not valid or was revoked.",
        "headers": {"WWW-Authenticate": {"required": True, **STRING}},
    },
    403: {"description": "The API key lacks the scope this operation needs."},
    429: {
        "description": "The API key used up its requests of this minute, or this client"
        " address sent too many invalid keys (AUTH_FAILURES_PER_MINUTE).",
        "headers": {"Retry-After": RETRY_AFTER},
    },
    503: {
        "description": "The database is unavailable; try again shortly.",
        "headers": {"Retry-After": RETRY_AFTER},
    },
}


def install(app: FastAPI) -> None:
    """Make `/openapi.json` (and `/docs`) describe every answer of `app`."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_every_answer(generate(), app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def describe_every_answer(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    # FastAPI's own validation error body is never sent: problem+json replaces it.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components["securitySchemes"] = SECURITY_SCHEMES
    for route, method in _operations(routes):
        operation = schema["paths"][route.path_format][method]
        _describe_operation(operation, route)
    return schema


def _operations(routes: list[Any]) -> Iterator[tuple[RouteContext, str]]:
    """Each documented operation's route as included (prefixes and router-level settings
    applied), the way FastAPI's own OpenAPI generation walks them."""
    for route in iter_route_contexts(routes):
        if isinstance(route.original_route, APIRoute) and route.include_in_schema:
            for method in sorted(route.methods or ()):
                yield route, method.lower()


def _describe_operation(operation: dict[str, Any], route: RouteContext) -> None:
    responses: dict[str, Any] = operation["responses"]
    # FastAPI adds a 422 to any route with parameters; only a body (or a route that says so)
    # can be refused with 422: a bad query, path or header is a 400.
    if "requestBody" not in operation and 422 not in route.responses:
        responses.pop("422", None)
    errors: dict[int, dict[str, Any]] = {
        status: {"description": text} for status, text in LIMIT_ERRORS.items()
    }
    if operation.get("parameters") or "requestBody" in operation:
        errors[400] = {
            "description": "A parameter is missing or not valid (see `errors`), or the body "
            "cannot be parsed."
        }
    authenticated = _depends_on(route.dependant, auth.checks_api_key)
    if authenticated:
        operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
        errors.update(AUTH_ERRORS)
    for code, error in errors.items():
        responses.setdefault(str(code), error)
    for status, response in responses.items():
        own = route.responses.get(int(status)) or route.responses.get(status) or {}
        if int(status) >= 400 and not own.keys() & {"model", "content"}:
            response["content"] = PROBLEM_CONTENT
        _restore_examples(response, own)
        headers = response.setdefault("headers", {})
        headers.update(REQUEST_ID_HEADER)
        if authenticated and status != "401":
            headers.update(RATE_LIMIT_HEADERS)
    operation["responses"] = dict(sorted(responses.items()))


def _restore_examples(response: dict[str, Any], own: dict[str, Any]) -> None:
    """FastAPI drops every null from the schema it generates, its examples' included; a job's
    nulls (`result` while it runs, `error` when it succeeded) are part of its example."""
    for media_type, content in own.get("content", {}).items():
        if "examples" in content:
            response["content"][media_type]["examples"] = content["examples"]


def _depends_on(dependant: Dependant, matches: Callable[[object], bool]) -> bool:
    return any(
        matches(dependency.call) or _depends_on(dependency, matches)
        for dependency in dependant.dependencies
    )

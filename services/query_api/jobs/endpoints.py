"""Jobs over HTTP (SPEC §3 and §4): thin endpoints around `service`.

Parameters of `exportar` and `generar` come in the query string (GET and POST) or, for POST, in
a JSON body; a parameter given in both places takes the body's value. One handler serves both
methods of each (the POST route also documents the body). A bad parameter is a 400 when it came
in the query string and a 422 when it came in the body.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Mapping, Set
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from services.query_api import middleware, problems
from services.query_api.auth import ExportPrincipal, ExportPrincipalOrLink
from services.query_api.deps import Db, ReadDb, SettingsDep, WaitRedis
from services.query_api.jobs import downloads, links, prefer, service
from services.query_api.jobs.schemas import (
    BULK_EXPORT_ACCEPTED_EXAMPLES,
    BULK_EXPORT_DONE_EXAMPLES,
    BULK_EXPORT_INVALID_EXAMPLES,
    BULK_EXPORT_REQUEST_BODY,
    BulkExportBody,
    ExportBody,
    Job,
    JobPage,
    ReportBody,
    download_url,
    job_url,
)
from services.query_api.problems import Problem
from shared import file_formats, job_params, storage
from shared.jobs import TERMINAL, JobType, Status
from shared.settings import Settings

router = APIRouter(prefix="/api", tags=["jobs"])

ClienteId = Annotated[int, Path(ge=1, le=2**63 - 1)]
JobId = Annotated[uuid.UUID, Path(description="The job's id (a UUID).")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Retry-safe creation: the same key within 24 h returns the same job.",
    ),
]
Formato = Annotated[str | None, Query(description="csv (default), excel (alias xlsx) or txt")]
ReportFormato = Annotated[str | None, Query(description="excel (default, alias xlsx) or csv")]
Moment = Annotated[
    str | None,
    Query(description="A date (midnight at its start, TIMEZONE) or an ISO 8601 datetime."),
]
Monto = Annotated[str | None, Query(description="Decimal ≥ 0; default 5000000.")]


BodyT = TypeVar("BodyT", bound=BaseModel)


async def _parameters(
    request: Request, query: Mapping[str, str | None], body_model: type[BodyT]
) -> tuple[dict[str, Any], set[str]]:
    """The request's parameters (a POST body's win over the query string's), and the names of
    those that came from the body."""
    body = await _json_body(request, body_model)
    from_body = {k: v for k, v in (body.model_dump() if body else {}).items() if v is not None}
    from_query = {k: v for k, v in query.items() if v is not None}
    return from_query | from_body, set(from_body)


async def _json_body(request: Request, model: type[BodyT]) -> BodyT | None:
    """A POST's JSON body, refused the way FastAPI refuses bodies (422 naming the field); None
    for a GET or an empty body."""
    if request.method != "POST":
        return None
    raw = await request.body()
    if raw.strip() in (b"", b"null"):
        return None
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        errors = [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        raise RequestValidationError(errors) from None


def _get_and_post(
    path: str, endpoint: Any, body_model: type[BaseModel], responses: dict[int | str, Any]
) -> None:
    """Route GET and POST of `path` to one handler; the POST documents its optional body."""
    body = {"content": {"application/json": {"schema": body_model.model_json_schema()}}}
    for method, extra in (("GET", None), ("POST", {"requestBody": body})):
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            status_code=202,
            responses=responses,
            openapi_extra=extra,
        )


def _export_parser(cliente_id: int, values: Mapping[str, Any]) -> service.ParseParams:
    return lambda _: job_params.parse_export(cliente_id, formato=values.get("formato"))


def _report_parser(values: Mapping[str, Any], settings: Settings) -> service.ParseParams:
    timezone = ZoneInfo(settings.timezone)
    return lambda now: job_params.parse_report(
        desde=values.get("desde"),
        hasta=values.get("hasta"),
        monto_minimo=values.get("monto_minimo"),
        formato=values.get("formato"),
        now=now,
        timezone=timezone,
        max_days=settings.report_max_days,
    )


async def _one_call_wait(
    wait: Annotated[
        int | None,
        Query(
            ge=0,
            le=prefer.MAX_WAIT_SECONDS,
            description="Seconds to hold the answer for the job to end: `303 See Other` to "
            "the file if it succeeds in time, else `202`. Same as `Prefer: wait=N`.",
        ),
    ] = None,
    prefer_headers: Annotated[
        list[str] | None,
        Header(alias="Prefer", description="RFC 7240; `wait=N` (N ≤ 30) as `?wait=N`."),
    ] = None,
) -> int | None:
    return wait if wait is not None else prefer.wait_seconds(prefer_headers or [])


# One-call results (SPEC §9), for every job-creating request: `?wait=N` or `Prefer: wait=N`.
OneCallWait = Annotated[int | None, Depends(_one_call_wait)]


async def _accept(
    request: Request,
    response: Response,
    db: Db,
    principal: ExportPrincipal,
    job_type: JobType,
    parse: service.ParseParams,
    from_body: Set[str],
    idempotency_key: str | None,
    wait: int | None,
) -> Job:
    """Create the job and answer 202 with `Location` and `Retry-After`; with `wait`, hold the
    answer until the job ends: succeeded in time → 303 to its file."""
    settings: Settings = request.app.state.settings
    try:
        row = await service.create_job(
            db,
            owner=principal,
            job_type=job_type,
            parse=parse,
            idempotency_key=idempotency_key,
            request_id=getattr(request.state, "request_id", None),
            max_active=settings.job_max_active_per_key,
        )
    except job_params.InvalidParams as error:
        errors = [{"field": e.field, "message": e.message} for e in error.errors]
        # Like every validation error of the API: 400 for the query string, 422 for the body
        # (`filtro.ids[3]` came in the body's `filtro`).
        in_body = any(re.split(r"[.\[]", e.field, maxsplit=1)[0] in from_body for e in error.errors)
        status = 422 if in_body else 400
        raise Problem(status, str(error), kind="validation-error", errors=errors) from None
    if wait:
        state = request.app.state
        started = time.monotonic()
        # The waiter's reads on the autocommit engine, as GET /api/jobs/{id}?wait: one round
        # trip each, not BEGIN, SELECT, ROLLBACK.
        row = await service.wait_for(
            state.read_engine, state.wait_redis, state.long_polls, principal, row.id, wait
        )
        # Not applied when the key's long polls were all taken and the answer came at once.
        if row.status in TERMINAL or time.monotonic() - started >= wait - 0.1:
            response.headers.update(prefer.applied(wait))
    job = Job.from_row(row, secret=settings.secret_key)
    if wait and row.status == Status.SUCCEEDED:
        # The plain download URL, not the signed one: a client following the redirect to the
        # same host sends its key again (curl -L, requests, browsers), and the link in the body
        # is there for one that does not.
        response.status_code = 303
        response.headers["Location"] = download_url(row.id)
        return job
    response.headers["Location"] = job_url(row.id)
    response.headers.update(service.retry_after(row) or {"Retry-After": "0"})
    return job


_HEADER = {"required": True, "schema": {"type": "string"}}
_CREATED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the job.",
        "headers": {
            "Location": {"description": "The job's URL.", **_HEADER},
            "Retry-After": {"description": "Seconds until it is worth looking.", **_HEADER},
        },
    },
    303: {
        "description": "With `?wait=N` or `Prefer: wait=N`: the job succeeded in time; the body "
        "is the job, `Location` its file (follow it with the same key).",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}},
        "headers": {
            "Location": {"description": "The download URL.", **_HEADER},
            "Preference-Applied": {"description": "`wait=N`.", **_HEADER},
        },
    },
    422: {"description": "A bad JSON body, or an Idempotency-Key reused for another request."},
    429: {
        "description": "This key has JOB_MAX_ACTIVE_PER_KEY jobs queued or running (no job was "
        "made), or used up its requests of this minute.",
        "headers": {"Retry-After": {"description": "Seconds to wait.", **_HEADER}},
    },
}
_EXPORT_CREATED = {**_CREATED, 404: {"description": "No such customer: no job was made."}}
_NO_JOB: dict[int | str, dict[str, Any]] = {404: {"description": "No such job for this API key."}}
_STORAGE_DOWN: dict[int | str, dict[str, Any]] = {
    503: {"description": "The database or the file storage is unavailable; try again shortly."}
}
_FILE_TYPES = sorted({file_type.content_type for file_type in file_formats.BY_FORMATO.values()})


async def exportar_cliente(
    request: Request,
    response: Response,
    db: Db,
    principal: ExportPrincipal,
    cliente_id: ClienteId,
    formato: Formato = None,
    idempotency_key: IdempotencyKey = None,
    wait: OneCallWait = None,
) -> Job:
    """Start an export of one customer and all their purchases (csv, excel or txt); parameters
    in the query string or, for POST, a JSON body. With `?wait=N`, the file in one call."""
    values, from_body = await _parameters(request, {"formato": formato}, ExportBody)
    parse = _export_parser(cliente_id, values)
    job_type = JobType.EXPORT_CLIENTE
    return await _accept(
        request, response, db, principal, job_type, parse, from_body, idempotency_key, wait
    )


async def generar_reporte(
    request: Request,
    response: Response,
    db: Db,
    settings: SettingsDep,
    principal: ExportPrincipal,
    desde: Moment = None,
    hasta: Moment = None,
    monto_minimo: Monto = None,
    formato: ReportFormato = None,
    idempotency_key: IdempotencyKey = None,
    wait: OneCallWait = None,
) -> Job:
    """Start a loyalty report: active customers whose completed purchases in [desde, hasta)
    add up to more than monto_minimo; parameters in the query string or, for POST, a JSON body.
    With `?wait=N`, the file in one call."""
    query = {"desde": desde, "hasta": hasta, "monto_minimo": monto_minimo, "formato": formato}
    values, from_body = await _parameters(request, query, ReportBody)
    parse = _report_parser(values, settings)
    job_type = JobType.REPORTE_FIDELIZACION
    return await _accept(
        request, response, db, principal, job_type, parse, from_body, idempotency_key, wait
    )


_get_and_post("/clientes/{cliente_id}/exportar", exportar_cliente, ExportBody, _EXPORT_CREATED)
_get_and_post("/reporte-fidelizacion/generar", generar_reporte, ReportBody, _CREATED)

# Every error of this body is a 422, like a body the other endpoints cannot parse.
_BULK_FIELDS = frozenset({*BulkExportBody.model_fields, "body"})
_BULK_CREATED: dict[int | str, Any] = {
    **_CREATED,
    202: {
        **_CREATED[202],
        "content": {"application/json": {"examples": BULK_EXPORT_ACCEPTED_EXAMPLES}},
    },
    303: {
        **_CREATED[303],
        "content": {
            "application/json": {
                **_CREATED[303]["content"]["application/json"],
                "examples": BULK_EXPORT_DONE_EXAMPLES,
            }
        },
    },
    403: {"description": "The API key lacks the `export` scope (a read-only key)."},
    413: {"description": f"The body exceeds {middleware.MAX_BULK_BODY_BYTES} bytes."},
    422: {
        "description": "A filter or the format is not valid (`errors` names the field, e.g. "
        "`filtro.documentos[3].tipo_documento`), the body is not JSON, or an Idempotency-Key "
        "was reused for another request.",
        "content": {
            problems.PROBLEM_MEDIA_TYPE: {
                "schema": {"$ref": "#/components/schemas/Problem"},
                "examples": BULK_EXPORT_INVALID_EXAMPLES,
            }
        },
    },
}


def _parse_bulk_body(
    raw: bytes, timezone: ZoneInfo, codes: frozenset[str]
) -> job_params.BulkExportParams:
    try:
        body = orjson.loads(raw) if raw.strip() else None
    except orjson.JSONDecodeError as error:
        raise job_params.InvalidParams(
            [job_params.FieldError("body", f"is not valid JSON ({error})")]
        ) from None
    return job_params.parse_bulk_export(body, timezone=timezone, known_codes=codes)


@router.post(
    "/exportaciones",
    status_code=202,
    responses=_BULK_CREATED,
    openapi_extra={"requestBody": BULK_EXPORT_REQUEST_BODY},
)
async def crear_exportacion(
    request: Request,
    response: Response,
    db: Db,
    settings: SettingsDep,
    principal: ExportPrincipal,
    idempotency_key: IdempotencyKey = None,
    wait: OneCallWait = None,
) -> Job:
    """Start a bulk export (SPEC §10): one file (csv, excel or jsonl) with every customer that
    matches all the given filters, by id; with `incluir_compras`, their purchases too. Lists
    of ids and documents take up to 100,000 entries each; `result.not_found` counts the
    documents that matched no customer. With `?wait=N`, the file in one call."""
    raw = await request.body()
    codes = await service.document_codes(db)
    # Off the event loop: 100,000 documents take a moment to decode and check.
    failure: job_params.InvalidParams | None = None
    try:
        parsed = await asyncio.to_thread(_parse_bulk_body, raw, ZoneInfo(settings.timezone), codes)
    except job_params.InvalidParams as error:
        failure = error
    del raw

    def parse(_: datetime) -> job_params.BulkExportParams:
        if failure is not None:
            raise failure
        return parsed

    job_type = JobType.EXPORTACION_MASIVA
    return await _accept(
        request, response, db, principal, job_type, parse, _BULK_FIELDS, idempotency_key, wait
    )


@router.get("/jobs")
async def list_jobs(
    request: Request,
    db: ReadDb,
    settings: SettingsDep,
    principal: ExportPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    status: Status | None = None,
    job_type: Annotated[JobType | None, Query(alias="type")] = None,
) -> JobPage:
    """The caller's jobs, newest first; follow `next` for the following page."""
    rows, next_cursor = await service.list_page(
        db,
        principal,
        limit=limit,
        cursor=cursor,
        status=status,
        job_type=job_type,
        secret=settings.secret_key,
    )
    next_url = str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None
    jobs = [Job.from_row(row, secret=settings.secret_key) for row in rows]
    return JobPage(results=jobs, next=next_url)


@router.get(
    "/jobs/{job_id}",
    responses={
        200: {
            "description": "The job.",
            "headers": {
                "Retry-After": {
                    "description": "While it is under way.",
                    "schema": {"type": "string"},
                }
            },
        },
        **_NO_JOB,
    },
)
async def get_job(
    request: Request,
    response: Response,
    db: ReadDb,
    redis: WaitRedis,
    settings: SettingsDep,
    principal: ExportPrincipal,
    job_id: JobId,
    wait: Annotated[
        float, Query(ge=0, le=30, description="Seconds to hold the answer until the job ends.")
    ] = 0,
) -> Job:
    """The job; with `wait`, answered as soon as it ends or when `wait` seconds pass (at once
    when this key already has LONG_POLLS_PER_KEY waits under way)."""
    long_polls = request.app.state.long_polls
    row = await service.wait_for(db, redis, long_polls, principal, job_id, wait)
    response.headers.update(service.retry_after(row))
    return Job.from_row(row, secret=settings.secret_key)


@router.delete("/jobs/{job_id}", status_code=204, responses={**_NO_JOB, **_STORAGE_DOWN})
async def delete_job(db: Db, principal: ExportPrincipal, job_id: JobId) -> Response:
    """Cancel a queued or running job; delete a finished job's file (it then shows `expired`).
    A job already failed, canceled or expired is left as it is. Always 204 for the owner."""
    try:
        await service.delete(db, storage.get_storage(), principal, job_id)
    except storage.StorageUnavailable:
        raise downloads.storage_unavailable() from None
    return Response(status_code=204)


@router.get(
    "/jobs/{job_id}/download",
    response_class=Response,
    responses={
        200: {
            "description": "The whole file.",
            "content": {
                content_type: {"schema": {"type": "string", "format": "binary"}}
                for content_type in _FILE_TYPES
            },
            "headers": {
                "Content-Disposition": {"description": "`attachment` and its name.", **_HEADER},
                "ETag": {"description": "The file's sha256.", **_HEADER},
                "Accept-Ranges": {"description": "`bytes`: ranges are served.", **_HEADER},
            },
        },
        206: {
            "description": "The part of the file that `Range` asked for (`If-Range` honoured).",
            "headers": {"Content-Range": {"description": "Which bytes, of how many.", **_HEADER}},
        },
        **_NO_JOB,
        403: {"description": "A signed link tampered with or expired."},
        409: {"description": "Not ready (with `Retry-After`), failed or canceled."},
        410: {"description": "Expired: the file was deleted."},
        416: {"description": "The range lies past the end of the file (`Content-Range`)."},
        **_STORAGE_DOWN,
    },
)
async def download_job(
    request: Request,
    db: ReadDb,
    settings: SettingsDep,
    principal: ExportPrincipalOrLink,
    job_id: JobId,
    expires: Annotated[str | None, Query(description="A signed link's expiry.")] = None,
    signature: Annotated[str | None, Query(description="A signed link's HMAC.")] = None,
) -> Response:
    """The job's file, streamed, with its name, type, length and sha256 as ETag; a `Range`
    (with `If-Range`) gets a part of it. With the API key, or as the job's `signed_url`."""
    if principal is None:
        try:
            links.verify(
                job_id, expires, signature, now=datetime.now(UTC), secret=settings.secret_key
            )
        except links.InvalidLink as error:
            raise Problem(403, str(error), kind="invalid-signed-link") from None
    row = await service.downloadable(db, principal, job_id)
    return await downloads.file_response(request, row)

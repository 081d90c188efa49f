"""Jobs over HTTP (SPEC §3 and §4): thin endpoints around `service`.

Parameters of `exportar` and `generar` come in the query string (GET and POST) or, for POST, in
a JSON body; a parameter given in both places takes the body's value. One handler serves both
methods of each (the POST route also documents the body). A bad parameter is a 400 when it came
in the query string and a 422 when it came in the body.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, BinaryIO, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import FileResponse, StreamingResponse

from services.query_api.auth import ExportPrincipal
from services.query_api.deps import Db, ReadDb, SettingsDep, WaitRedis
from services.query_api.jobs import service
from services.query_api.jobs.schemas import ExportBody, Job, JobPage, ReportBody, job_url
from services.query_api.problems import Problem
from shared import file_formats, job_params, storage
from shared.jobs import JobType, Status
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


async def _accept(
    request: Request,
    response: Response,
    db: Db,
    principal: ExportPrincipal,
    job_type: JobType,
    parse: service.ParseParams,
    from_body: set[str],
    idempotency_key: str | None,
) -> Job:
    """Create the job and answer 202 with `Location` and `Retry-After`."""
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
        # Like every validation error of the API: 400 for the query string, 422 for the body.
        status = 422 if any(e.field in from_body for e in error.errors) else 400
        raise Problem(status, str(error), kind="validation-error", errors=errors) from None
    response.headers["Location"] = job_url(row.id)
    response.headers.update(service.retry_after(row) or {"Retry-After": "0"})
    return Job.from_row(row)


_HEADER = {"required": True, "schema": {"type": "string"}}
_CREATED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the job.",
        "headers": {
            "Location": {"description": "The job's URL.", **_HEADER},
            "Retry-After": {"description": "Seconds until it is worth looking.", **_HEADER},
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
) -> Job:
    """Start an export of one customer and all their purchases (csv, excel or txt); parameters
    in the query string or, for POST, a JSON body."""
    values, from_body = await _parameters(request, {"formato": formato}, ExportBody)
    parse = _export_parser(cliente_id, values)
    return await _accept(
        request, response, db, principal, JobType.EXPORT_CLIENTE, parse, from_body, idempotency_key
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
) -> Job:
    """Start a loyalty report: active customers whose completed purchases in [desde, hasta)
    add up to more than monto_minimo; parameters in the query string or, for POST, a JSON body."""
    query = {"desde": desde, "hasta": hasta, "monto_minimo": monto_minimo, "formato": formato}
    values, from_body = await _parameters(request, query, ReportBody)
    parse = _report_parser(values, settings)
    job_type = JobType.REPORTE_FIDELIZACION
    return await _accept(
        request, response, db, principal, job_type, parse, from_body, idempotency_key
    )


_get_and_post("/clientes/{cliente_id}/exportar", exportar_cliente, ExportBody, _EXPORT_CREATED)
_get_and_post("/reporte-fidelizacion/generar", generar_reporte, ReportBody, _CREATED)


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
    return JobPage(results=[Job.from_row(row) for row in rows], next=next_url)


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
    return Job.from_row(row)


@router.delete("/jobs/{job_id}", status_code=204, responses={**_NO_JOB, **_STORAGE_DOWN})
async def delete_job(db: Db, principal: ExportPrincipal, job_id: JobId) -> Response:
    """Cancel a queued or running job; delete a finished job's file (it then shows `expired`).
    A job already failed, canceled or expired is left as it is. Always 204 for the owner."""
    try:
        await service.delete(db, storage.get_storage(), principal, job_id)
    except storage.StorageUnavailable:
        raise _storage_unavailable() from None
    return Response(status_code=204)


@router.get(
    "/jobs/{job_id}/download",
    response_class=Response,
    responses={
        200: {
            "description": "The file.",
            "content": {
                content_type: {"schema": {"type": "string", "format": "binary"}}
                for content_type in _FILE_TYPES
            },
            "headers": {
                "Content-Disposition": {"description": "`attachment` and its name.", **_HEADER},
                "ETag": {"description": "The file's sha256.", **_HEADER},
            },
        },
        **_NO_JOB,
        409: {"description": "Not ready (with `Retry-After`), failed or canceled."},
        410: {"description": "Expired: the file was deleted."},
        **_STORAGE_DOWN,
    },
)
async def download_job(db: ReadDb, principal: ExportPrincipal, job_id: JobId) -> Response:
    """The job's file, streamed, with its name, type, length and sha256 as ETag."""
    row = await service.downloadable(db, principal, job_id)
    result = row.result
    headers = {
        "Content-Disposition": attachment(result["filename"]),
        "ETag": f'"{result["sha256"]}"',
        "Cache-Control": "private, no-store",
    }
    files = storage.get_storage()
    try:
        path = files.local_path(row.storage_key)
        if path is not None:
            if not await asyncio.to_thread(path.is_file):
                raise service.gone()
            return FileResponse(path, media_type=result["content_type"], headers=headers)
        source = await asyncio.to_thread(files.open, row.storage_key)
    except FileNotFoundError:
        raise service.gone() from None
    except storage.StorageUnavailable:
        raise _storage_unavailable() from None
    headers["Content-Length"] = str(result["size_bytes"])
    return StreamingResponse(_chunks(source), media_type=result["content_type"], headers=headers)


async def _chunks(source: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(source.read, 256 * 1024):
            yield chunk
    finally:
        await asyncio.to_thread(source.close)


def attachment(filename: str) -> str:
    """RFC 6266: an ASCII `filename` for old clients and the exact UTF-8 name in `filename*`."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _storage_unavailable() -> Problem:
    return Problem(
        503,
        "The file storage is unavailable; try again shortly.",
        kind="service-unavailable",
        headers={"Retry-After": "5"},
    )

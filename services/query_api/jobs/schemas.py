"""Wire types of the jobs API (SPEC §4): the job document and the creation bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from services.query_api.jobs import links
from shared.job_params import MAX_LISTA
from shared.jobs import JobType, Status


def job_url(job_id: uuid.UUID | str) -> str:
    return f"/api/jobs/{job_id}"


def download_url(job_id: uuid.UUID | str) -> str:
    return f"{job_url(job_id)}/download"


class JobError(BaseModel):
    code: str
    message: str


class JobResult(BaseModel):
    filename: str
    content_type: str
    size_bytes: int
    row_count: int
    sha256: str
    not_found: int | None = Field(
        None,
        description="A bulk export by documents: how many of them matched no customer; null "
        "for the other job types.",
    )
    download_url: str
    signed_url: str | None = Field(
        None,
        description="The download URL with `expires` and `signature`: works without an API key "
        "for up to an hour, never past the job's `expires_at` (a fresh one on every read).",
        examples=[
            "/api/jobs/4b1f0c9e-7d2a-4c51-9a59-0d6f3f0b9c11/download?expires=1764687600"
            "&signature=9f2c…"
        ],
    )


class Job(BaseModel):
    id: uuid.UUID
    type: JobType
    status: Status
    params: dict[str, Any]
    progress: int | None = Field(ge=0, le=100)
    rows_written: int | None = Field(
        None, description="A bulk export's rows written so far; null for the other job types."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    error: JobError | None
    result: JobResult | None

    @classmethod
    def from_row(cls, row: Row[Any], *, secret: str, now: datetime | None = None) -> Job:
        """The job document; `secret` (SECRET_KEY) signs the result's link."""
        job = dict(row._mapping)
        if job["result"] is not None:  # the file's URL is the API's to say, not the worker's
            path = download_url(row.id)
            signed = None
            if row.status == Status.SUCCEEDED:
                expires = links.link_expiry(now or datetime.now(UTC), row.expires_at)
                signed = links.signed_path(path, row.id, expires, secret)
            job["result"] = {**job["result"], "download_url": path, "signed_url": signed}
        return cls.model_validate(job)


class JobPage(BaseModel):
    results: list[Job]
    next: str | None


class ExportBody(BaseModel):
    """POST body of `exportar`; the same parameter may come in the query string instead."""

    model_config = ConfigDict(extra="forbid")
    formato: str | None = Field(None, examples=["csv", "excel", "txt"])


class ReportBody(BaseModel):
    """POST body of `generar`; the same parameters may come in the query string instead."""

    model_config = ConfigDict(extra="forbid")
    desde: str | None = Field(None, examples=["2026-10-27", "2026-10-27T00:00:00-05:00"])
    hasta: str | None = Field(None, examples=["2026-11-26"])
    monto_minimo: str | int | float | None = Field(None, examples=["5000000"])
    formato: str | None = Field(None, examples=["excel", "csv"])


class BulkDocumento(BaseModel):
    tipo_documento: str = Field(examples=["CC"], description="The type's code, any case.")
    numero_documento: str = Field(examples=["1020304050"])


class BulkFiltro(BaseModel):
    """Every filter is optional; those given combine with AND."""

    model_config = ConfigDict(extra="forbid")
    ids: list[int] | None = Field(
        None, min_length=1, max_length=MAX_LISTA, description="Customer ids."
    )
    documentos: list[BulkDocumento] | None = Field(
        None,
        min_length=1,
        max_length=MAX_LISTA,
        description="Documents; those that match no customer are counted in `result.not_found`.",
    )
    q: str | None = Field(None, description="Case-insensitive text in name, surname or e-mail.")
    activo: bool | None = None
    tipo_documento: str | None = Field(None, examples=["CC"], description="A type's code.")
    registrados_desde: str | None = Field(
        None,
        examples=["2026-01-01"],
        description="Registered on or after: a date (midnight, TIMEZONE) or ISO 8601 datetime.",
    )
    registrados_hasta: str | None = Field(None, description="Registered before.")
    compras_desde: str | None = Field(
        None,
        description="Has a completed purchase on or after this moment (and before "
        "`compras_hasta`, when given).",
    )
    compras_hasta: str | None = None


class BulkExportBody(BaseModel):
    """POST body of `exportaciones` (SPEC §10). Documents the operation; the API checks the body
    with `shared.job_params.parse_bulk_export`, which is fast enough for 100,000 documents."""

    model_config = ConfigDict(extra="forbid")
    formato: str | None = Field(
        None,
        examples=["csv", "excel", "jsonl"],
        description="csv (default), excel (alias xlsx) or jsonl",
    )
    incluir_compras: bool | None = Field(
        None,
        description="One row per purchase, the customer's fields repeated (csv, excel), or a "
        "`compras` array in each customer's line (jsonl). Default false: one row per customer.",
    )
    filtro: BulkFiltro | None = None


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its nested models written in place: a route's own
    `requestBody` cannot point into `#/$defs` (that would mean the OpenAPI document's root)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


BULK_EXPORT_REQUEST_BODY: dict[str, Any] = {
    "required": False,
    "content": {
        "application/json": {
            "schema": inline_schema(BulkExportBody),
            "examples": {
                "documentos": {
                    "summary": "The customers of a list of documents, with their purchases",
                    "value": {
                        "formato": "csv",
                        "incluir_compras": True,
                        "filtro": {
                            "documentos": [
                                {"tipo_documento": "CC", "numero_documento": "1020304050"},
                                {"tipo_documento": "NIT", "numero_documento": "900123456-7"},
                            ]
                        },
                    },
                },
                "filtros": {
                    "summary": "Active customers with a completed purchase in November, jsonl",
                    "value": {
                        "formato": "jsonl",
                        "filtro": {
                            "activo": True,
                            "compras_desde": "2026-11-01",
                            "compras_hasta": "2026-12-01",
                        },
                    },
                },
                "todos": {"summary": "Every customer, one csv row each", "value": {}},
            },
        }
    },
}


# Examples of the answers of `POST /api/exportaciones` for /docs: the job as it is accepted,
# as it runs and as it ends (the body of a `?wait=N` that got its 303).
_BULK_JOB_ID = "8d3c1e52-4f0a-4b7e-9c1d-2a6b5e7f9a10"
_BULK_JOB: dict[str, Any] = {
    "id": _BULK_JOB_ID,
    "type": "exportacion_masiva",
    "status": "queued",
    "params": {
        "formato": "csv",
        "incluir_compras": True,
        "filtro": {"documentos_count": 2},
        "listas_sha256": "5d41402abc4b2a76b9719d911017c592…",
    },
    "progress": None,
    "rows_written": None,
    "created_at": "2026-12-02T15:04:05.123456Z",
    "started_at": None,
    "finished_at": None,
    "expires_at": None,
    "error": None,
    "result": None,
}
_BULK_RUNNING = {
    **_BULK_JOB,
    "status": "running",
    "progress": 40,
    "rows_written": 8000,
    "started_at": "2026-12-02T15:04:05.310000Z",
}
_BULK_SUCCEEDED = {
    **_BULK_JOB,
    "status": "succeeded",
    "progress": 100,
    "rows_written": 20000,
    "started_at": "2026-12-02T15:04:05.310000Z",
    "finished_at": "2026-12-02T15:04:07.020000Z",
    "expires_at": "2026-12-03T15:04:07.020000Z",
    "result": {
        "filename": "exportacion_masiva_2026-12-02_8d3c1e52.csv",
        "content_type": "text/csv; charset=utf-8",
        "size_bytes": 3145728,
        "row_count": 20000,
        "sha256": "9b74c9897bac770ffc029102a200c5de…",
        "not_found": 1,
        "download_url": f"/api/jobs/{_BULK_JOB_ID}/download",
        "signed_url": f"/api/jobs/{_BULK_JOB_ID}/download?expires=1764691447&signature=3f1a…",
    },
}
BULK_EXPORT_ACCEPTED_EXAMPLES: dict[str, Any] = {
    "queued": {"summary": "Accepted, waiting for the bulk worker", "value": _BULK_JOB},
    "running": {
        "summary": "Still running when `?wait=N` ran out: progress and rows written so far",
        "value": _BULK_RUNNING,
    },
}
BULK_EXPORT_DONE_EXAMPLES: dict[str, Any] = {
    "succeeded": {
        "summary": "Done within `?wait=N`: one of the two documents matched no customer",
        "value": _BULK_SUCCEEDED,
    }
}
BULK_EXPORT_INVALID_EXAMPLES: dict[str, Any] = {
    "invalid": {
        "summary": "A bad format and an unknown document type, each named",
        "value": {
            "type": "https://clientes.example/problems/validation-error",
            "title": "Unprocessable Entity",
            "status": 422,
            "detail": "formato: must be one of csv, excel, jsonl, xlsx (= excel); got 'pdf'; "
            "filtro.documentos[0].tipo_documento: must be a document type code (CC, CE, NIT, "
            "PA, TI); got 'XX'",
            "errors": [
                {
                    "field": "formato",
                    "message": "must be one of csv, excel, jsonl, xlsx (= excel); got 'pdf'",
                },
                {
                    "field": "filtro.documentos[0].tipo_documento",
                    "message": "must be a document type code (CC, CE, NIT, PA, TI); got 'XX'",
                },
            ],
        },
    }
}

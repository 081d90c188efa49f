"""Wire types of the jobs API (SPEC §4): the job document and the creation bodies."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Row

from services.query_api.jobs import links
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

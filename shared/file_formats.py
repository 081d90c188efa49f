"""The file types a job can produce: what the worker writes and what the API serves.

Both services need a format's extension and content type (the worker names and stores the file,
the API documents its downloads), but only the worker renders: the renderers live in
`services/export_worker/renderers/`, each pairing one of these with its `render`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileType:
    extension: str
    content_type: str


CSV = FileType("csv", "text/csv; charset=utf-8")
XLSX = FileType("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
TXT = FileType("txt", "text/plain; charset=utf-8")
# JSON Lines (bulk exports): one JSON document per line.
JSONL = FileType("jsonl", "application/x-ndjson; charset=utf-8")

# By the `formato` a client asks for (shared.job_params validates the names and aliases).
BY_FORMATO: dict[str, FileType] = {"csv": CSV, "excel": XLSX, "txt": TXT, "jsonl": JSONL}

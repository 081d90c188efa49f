"""A job's file as an HTTP answer (SPEC §4 and §9): its name, type, length and sha256 as ETag,
whole (200) or one range of it (206, 416), the same from either storage backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, BinaryIO
from urllib.parse import quote

from fastapi import Request
from sqlalchemy import Row
from starlette.responses import FileResponse, Response, StreamingResponse

from services.query_api.jobs import ranges, service
from services.query_api.problems import Problem
from shared import storage

CHUNK_BYTES = 256 * 1024


async def file_response(request: Request, row: Row[Any]) -> Response:
    """The succeeded job's file, streamed unless it fits in one chunk; a `Range` gets only those
    bytes from the store."""
    result = row.result
    etag = f'"{result["sha256"]}"'
    size = int(result["size_bytes"])
    headers = {
        "Content-Disposition": attachment(result["filename"]),
        "ETag": etag,
        "Cache-Control": "private, no-store",
        "Accept-Ranges": "bytes",
    }
    try:
        wanted = ranges.requested(
            request.headers.get("range"), request.headers.get("if-range"), etag=etag, size=size
        )
    except ranges.Unsatisfiable:
        raise Problem(
            416,
            f"The range asked for lies past the end of the file ({size} bytes).",
            kind="range-not-satisfiable",
            headers={"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"},
        ) from None
    status = 200
    length = size
    if wanted is not None:
        status = 206
        length = wanted.length
        headers["Content-Range"] = f"bytes {wanted.first}-{wanted.last}/{size}"
    media_type = result["content_type"]
    files = storage.get_storage()
    try:
        if length <= CHUNK_BYTES:
            # One chunk at most (a customer's export): read whole in one hop to a thread, where
            # FileResponse takes four (stat, open, read, close) and the stream three.
            body = await asyncio.to_thread(_read_whole, files, row.storage_key, wanted)
            return Response(body, status, headers, media_type)
        path = files.local_path(row.storage_key)
        if path is not None and not await asyncio.to_thread(path.is_file):
            raise service.gone()
        if path is not None and "range" not in request.headers:
            # FileResponse would act on a Range itself, so only without one.
            return FileResponse(path, media_type=media_type, headers=headers)
        source = await asyncio.to_thread(files.open, row.storage_key, wanted)
    except FileNotFoundError:
        raise service.gone() from None
    except storage.StorageUnavailable:
        raise storage_unavailable() from None
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        _chunks(source), status_code=status, media_type=media_type, headers=headers
    )


def _read_whole(files: storage.Storage, key: str, wanted: storage.ByteRange | None) -> bytes:
    with files.open(key, wanted) as source:
        return source.read()


async def _chunks(source: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(source.read, CHUNK_BYTES):
            yield chunk
    finally:
        await asyncio.to_thread(source.close)


def attachment(filename: str) -> str:
    """RFC 6266: an ASCII `filename` for old clients and the exact UTF-8 name in `filename*`."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def storage_unavailable() -> Problem:
    return Problem(
        503,
        "The file storage is unavailable; try again shortly.",
        kind="service-unavailable",
        headers={"Retry-After": "5"},
    )

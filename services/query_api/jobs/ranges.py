"""HTTP range requests of downloads (RFC 9110 §14): which bytes a request asks for, if any.

Pure: the header values and the file's size and ETag in, a decision out. One range per request
(what download managers and resuming clients send); several ranges, another unit or a
malformed header are ignored and the whole file is sent, as RFC 9110 allows.
"""

from __future__ import annotations

import re

from shared.storage import ByteRange

_SINGLE_RANGE = re.compile(r"bytes=(?P<first>\d*)-(?P<last>\d*)")


class Unsatisfiable(Exception):
    """The range lies wholly past the end of the file (416)."""


def requested(
    range_header: str | None, if_range: str | None, *, etag: str, size: int
) -> ByteRange | None:
    """The bytes to send, or None for the whole file; raises `Unsatisfiable`.

    `If-Range` makes the range conditional: unless it names the file's current (strong) ETag,
    the client's earlier part belongs to another file, so it gets this one whole (200)."""
    if range_header is None:
        return None
    if if_range is not None and if_range.strip() != etag:
        return None
    match = _SINGLE_RANGE.fullmatch(range_header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match["first"], match["last"]
    if not first:  # "bytes=-500": the last 500 bytes
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)

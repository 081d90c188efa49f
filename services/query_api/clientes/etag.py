"""Strong ETags of response bodies and `If-None-Match` matching (RFC 9110 §8.8.3, §13.1.2)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def none_match_hits(if_none_match: Iterable[str], etag: str) -> bool:
    """True when any `If-None-Match` value names `etag` or is `*`.

    The comparison is weak, as the RFC asks for If-None-Match: `W/"x"` matches `"x"`.
    """
    for header in if_none_match:
        for candidate in header.split(","):
            tag = candidate.strip()
            if tag == "*" or tag.removeprefix("W/") == etag:
                return True
    return False

"""Keyset-pagination cursors: opaque to clients, signed so they cannot be forged.

A cursor is base64url(JSON of the last row's key + a truncated HMAC-SHA256). The HMAC also
covers a `purpose` (e.g. "clientes", "compras:42"), so a cursor of one listing is refused by
another. Pure functions: no request, no database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from datetime import datetime

import orjson

MAC_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

KeyPart = int | str


class InvalidCursor(ValueError):
    """Forged, truncated, foreign or garbage cursor."""


def _mac(payload: bytes, purpose: str, secret: str) -> bytes:
    message = purpose.encode() + b"\0" + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()[:MAC_BYTES]


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def encode(key: Sequence[KeyPart], *, purpose: str, secret: str) -> str:
    payload = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False).encode()
    return _base64url(payload + _mac(payload, purpose, secret))


def decode(token: str, *, purpose: str, secret: str) -> list[KeyPart]:
    if not _BASE64URL.fullmatch(token):
        raise InvalidCursor("not base64url")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidCursor("not base64url") from error
    if _base64url(raw) != token:  # a changed padding bit decodes alike: refuse every variant
        raise InvalidCursor("not canonical base64url")
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not payload or not hmac.compare_digest(mac, _mac(payload, purpose, secret)):
        raise InvalidCursor("bad signature")
    try:
        key = json.loads(payload)
    except ValueError as error:  # only reachable with the secret: still never a 500
        raise InvalidCursor("bad payload") from error
    if not isinstance(key, list) or not all(_is_key_part(part) for part in key):
        raise InvalidCursor("bad payload")
    return key


def _is_key_part(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


# Typed keys of the two listings.


def encode_id(last_id: int, *, purpose: str, secret: str) -> str:
    return encode([last_id], purpose=purpose, secret=secret)


def decode_id(token: str, *, purpose: str, secret: str) -> int:
    match decode(token, purpose=purpose, secret=secret):
        case [int(last_id)]:
            return last_id
    raise InvalidCursor("not an id key")


def encode_moment_id(key: tuple[datetime, int], *, purpose: str, secret: str) -> str:
    moment, last_id = key
    return encode([moment.isoformat(), last_id], purpose=purpose, secret=secret)


def decode_moment_id(token: str, *, purpose: str, secret: str) -> tuple[datetime, int]:
    match decode(token, purpose=purpose, secret=secret):
        case [str(moment), int(last_id)]:
            try:
                parsed = datetime.fromisoformat(moment)
            except ValueError as error:
                raise InvalidCursor("bad timestamp") from error
            if parsed.tzinfo is None:
                raise InvalidCursor("timestamp without offset")
            return parsed, last_id
    raise InvalidCursor("not a (timestamp, id) key")


def page_body(documents: Sequence[str], next_url: str | None) -> bytes:
    """`{"results": [...], "next": ...}` around JSON documents PostgreSQL already rendered."""
    results = ",".join(documents).encode()
    return b'{"results":[' + results + b'],"next":' + orjson.dumps(next_url) + b"}"

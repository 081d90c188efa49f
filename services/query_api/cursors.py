"""Keyset-pagination cursors of every listing (customers, purchases, jobs): opaque to clients,
signed so they cannot be forged.

A cursor is base64url(JSON of the last row's key + a truncated HMAC-SHA256). The HMAC also
covers a `purpose` (e.g. "clientes", "compras:42"), so a cursor of one listing is refused by
another. Pure functions (but `resume_after`, which words the 400): no request, no database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from services.query_api.problems import BadRequest

MAC_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")

KeyPart = int | str
Key = TypeVar("Key")


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


# Typed keys of the listings.


def encode_id(last_id: int, *, purpose: str, secret: str) -> str:
    return encode([last_id], purpose=purpose, secret=secret)


def decode_id(token: str, *, purpose: str, secret: str) -> int:
    match decode(token, purpose=purpose, secret=secret):
        case [int(last_id)]:
            return last_id
    raise InvalidCursor("not an id key")


def encode_moment_id(key: tuple[datetime, int | uuid.UUID], *, purpose: str, secret: str) -> str:
    moment, last_id = key
    part = str(last_id) if isinstance(last_id, uuid.UUID) else last_id
    return encode([moment.isoformat(), part], purpose=purpose, secret=secret)


def decode_moment_id(token: str, *, purpose: str, secret: str) -> tuple[datetime, int]:
    match decode(token, purpose=purpose, secret=secret):
        case [str(moment), int(last_id)]:
            return _moment(moment), last_id
    raise InvalidCursor("not a (timestamp, id) key")


def decode_moment_uuid(token: str, *, purpose: str, secret: str) -> tuple[datetime, uuid.UUID]:
    match decode(token, purpose=purpose, secret=secret):
        case [str(moment), str(last_id)]:
            try:
                return _moment(moment), uuid.UUID(last_id)
            except ValueError as error:
                raise InvalidCursor("bad uuid") from error
    raise InvalidCursor("not a (timestamp, uuid) key")


def _moment(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidCursor("bad timestamp") from error
    if parsed.tzinfo is None:
        raise InvalidCursor("timestamp without offset")
    return parsed


def resume_after(
    cursor: str | None, decode: Callable[..., Key], *, purpose: str, secret: str
) -> Key | None:
    """The key a listing's `cursor` resumes after; a 400 problem for anything this server did
    not sign for that listing."""
    if cursor is None:
        return None
    try:
        return decode(cursor, purpose=purpose, secret=secret)
    except InvalidCursor:
        message = "The cursor is not valid here; take it from a `next` link or start without one."
        raise BadRequest(message, errors=[{"field": "cursor", "message": message}]) from None

"""Signed download links (SPEC §9): a job's download path with `expires` and an HMAC
`signature`, usable without an API key until it expires, for a browser, an e-mail or `wget`.

The signature covers the job id and the expiry, with a key derived from SECRET_KEY for this use
alone (a cursor's or a session's MAC can never pass for a link's). A link lives at most
`LINK_LIFETIME`, never past the job's `expires_at`. Pure functions: no request, no database.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlencode

LINK_LIFETIME = timedelta(hours=1)
_PURPOSE = b"clientes/signed-download-link/v1"
_DIGITS = re.compile(r"\d{1,12}")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidLink(Exception):
    """Tampered, truncated, expired or made with another secret: the message says which."""


def _signature(job_id: uuid.UUID, expires: int, secret: str) -> str:
    key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()
    return hmac.new(key, f"{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def link_expiry(now: datetime, job_expires_at: datetime | None) -> int:
    """Unix seconds: an hour from now, or the job's expiry if that comes first."""
    until = now + LINK_LIFETIME
    if job_expires_at is not None:
        until = min(until, job_expires_at)
    return int(until.timestamp())


def signed_path(path: str, job_id: uuid.UUID, expires: int, secret: str) -> str:
    query = urlencode({"expires": expires, "signature": _signature(job_id, expires, secret)})
    return f"{path}?{query}"


def verify(
    job_id: uuid.UUID, expires: str | None, signature: str | None, *, now: datetime, secret: str
) -> None:
    """Raises `InvalidLink` unless `signature` signs this job and `expires`, still ahead."""
    if expires is None or signature is None:
        raise InvalidLink("A signed link carries both 'expires' and 'signature'.")
    if not _DIGITS.fullmatch(expires) or not _HEX_SHA256.fullmatch(signature):
        raise InvalidLink("The link's signature is not valid.")
    if not hmac.compare_digest(signature, _signature(job_id, int(expires), secret)):
        raise InvalidLink("The link's signature is not valid.")
    if int(expires) <= now.timestamp():
        raise InvalidLink("The link has expired; ask the API for a fresh one.")

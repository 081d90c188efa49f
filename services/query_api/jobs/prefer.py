"""`Prefer: wait=N` (RFC 7240 §4.3): how long a job-creating request may be held for the job to
end, so that a client following redirects gets its file from one request (SPEC §9).

A preference is a hint: a malformed one is ignored, a longer wait is cut to `MAX_WAIT_SECONDS`.
Pure; no request.
"""

from __future__ import annotations

MAX_WAIT_SECONDS = 30


def wait_seconds(prefer_headers: list[str]) -> int | None:
    """The `wait` preference of the request's `Prefer` headers (the first one given), or None."""
    for header in prefer_headers:
        for preference in header.split(","):
            token, _, value = preference.split(";", 1)[0].partition("=")
            if token.strip().lower() != "wait":
                continue
            value = value.strip().strip('"')
            if value.isascii() and value.isdigit():
                return min(int(value), MAX_WAIT_SECONDS)
            return None
    return None


def applied(seconds: float) -> dict[str, str]:
    """The `Preference-Applied` header for a wait that was honoured."""
    return {"Preference-Applied": f"wait={int(seconds)}"}

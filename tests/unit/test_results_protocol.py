"""The pure parts of getting results (SPEC §9): Range / If-Range, `Prefer: wait`, signed links."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.query_api.jobs import links, prefer, ranges
from shared.storage import ByteRange

ETAG = '"ab12"'
SECRET = "a-test-secret-of-enough-length-for-hmac"
JOB = uuid.UUID("4b1f0c9e-7d2a-4c51-9a59-0d6f3f0b9c11")
NOW = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "if_range", "expected"),
    [
        (None, None, None),
        ("bytes=0-0", None, ByteRange(0, 0)),
        ("bytes=10-19", None, ByteRange(10, 19)),
        ("bytes = 10-19", None, ByteRange(10, 19)),
        ("bytes=90-", None, ByteRange(90, 99)),
        ("bytes=90-500", None, ByteRange(90, 99)),
        ("bytes=-10", None, ByteRange(90, 99)),
        ("bytes=-500", None, ByteRange(0, 99)),
        ("bytes=10-19", ETAG, ByteRange(10, 19)),
        ("bytes=10-19", '"other"', None),  # another file: the whole of this one
        ("bytes=10-19", f"W/{ETAG}", None),  # a weak validator never matches
        ("bytes=10-19", "Wed, 02 Dec 2026 10:00:00 GMT", None),
        ("bytes=0-1,5-9", None, None),  # several ranges: served whole
        ("items=0-9", None, None),
        ("bytes=9-0", None, None),
        ("bytes=-", None, None),
        ("bytes=abc", None, None),
    ],
)
def test_requested_range(header: str | None, if_range: str | None, expected: ByteRange) -> None:
    assert ranges.requested(header, if_range, etag=ETAG, size=100) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(ranges.Unsatisfiable):
        ranges.requested(header, None, etag=ETAG, size=size)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ([], None),
        (["wait=10"], 10),
        (["respond-async, wait=5"], 5),
        (["respond-async", "Wait = 7"], 7),
        (['wait="3"'], 3),
        (["wait=3; foo=bar"], 3),
        (["wait=3600"], prefer.MAX_WAIT_SECONDS),
        (["wait=soon"], None),
        (["wait=-1"], None),
        (["wait=١٢"], None),  # Arabic-Indic digits are digits to str.isdigit, not to RFC 7240
        (["return=minimal"], None),
    ],
)
def test_wait_preference(headers: list[str], seconds: int | None) -> None:
    assert prefer.wait_seconds(headers) == seconds


def test_a_link_lasts_an_hour_unless_the_result_expires_first() -> None:
    assert links.link_expiry(NOW, None) == int((NOW + timedelta(hours=1)).timestamp())
    assert links.link_expiry(NOW, NOW + timedelta(days=1)) == int(
        (NOW + timedelta(hours=1)).timestamp()
    )
    soon = NOW + timedelta(minutes=5)
    assert links.link_expiry(NOW, soon) == int(soon.timestamp())


def signed_query(expires: int, secret: str = SECRET, job: uuid.UUID = JOB) -> dict[str, str]:
    path = links.signed_path("/x", job, expires, secret)
    query = dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))
    return query


def test_a_link_verifies_until_it_expires() -> None:
    expires = int((NOW + timedelta(minutes=1)).timestamp())
    query = signed_query(expires)
    links.verify(JOB, query["expires"], query["signature"], now=NOW, secret=SECRET)
    later = NOW + timedelta(minutes=1)
    with pytest.raises(links.InvalidLink, match="expired"):
        links.verify(JOB, query["expires"], query["signature"], now=later, secret=SECRET)


@pytest.mark.parametrize(
    "change",
    [
        lambda q: {**q, "expires": str(int(q["expires"]) + 1)},
        lambda q: {**q, "signature": q["signature"][::-1]},
        lambda q: {**q, "signature": q["signature"].upper()},
        lambda q: {**q, "signature": q["signature"][:-2]},
        lambda q: {**q, "expires": q["expires"] + " "},
        lambda q: {
            **q,
            "signature": signed_query(int(q["expires"]), "another-secret")["signature"],
        },
        lambda q: {
            **q,
            "signature": signed_query(int(q["expires"]), job=uuid.uuid4())["signature"],
        },
    ],
)
def test_a_changed_link_is_refused(change: object) -> None:
    query = signed_query(int((NOW + timedelta(minutes=30)).timestamp()))
    changed = change(query)  # type: ignore[operator]
    with pytest.raises(links.InvalidLink, match="signature"):
        links.verify(JOB, changed["expires"], changed["signature"], now=NOW, secret=SECRET)

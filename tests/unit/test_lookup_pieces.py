"""The pure pieces of the lookups: a page's body around PostgreSQL's JSON, `q`'s LIKE escaping,
If-None-Match against an ETag."""

from __future__ import annotations

import orjson
import pytest

from services.query_api.clientes import endpoints, etag, repository


def test_page_body_wraps_documents_postgresql_rendered() -> None:
    body = endpoints.page_body(['{"id" : 1}', '{"id" : 2}'], "http://x/api/clientes?cursor=a")
    assert orjson.loads(body) == {
        "results": [{"id": 1}, {"id": 2}],
        "next": "http://x/api/clientes?cursor=a",
    }
    assert orjson.loads(endpoints.page_body([], None)) == {"results": [], "next": None}


@pytest.mark.parametrize(
    ("fragment", "pattern"),
    [
        ("maría", "%maría%"),
        ("50%", "%50\\%%"),
        ("a_b", "%a\\_b%"),
        ("c:\\x", "%c:\\\\x%"),
    ],
)
def test_contains_pattern_escapes_like_wildcards(fragment: str, pattern: str) -> None:
    assert repository.contains_pattern(fragment) == pattern


def test_if_none_match_matching() -> None:
    tag = etag.strong_etag(b"{}")
    assert tag == etag.strong_etag(b"{}") != etag.strong_etag(b"[]")
    assert etag.none_match_hits([tag], tag)
    assert etag.none_match_hits(['"a", ' + tag], tag)
    assert etag.none_match_hits(['"a"', tag], tag)  # several header lines
    assert etag.none_match_hits(["*"], tag)
    assert etag.none_match_hits(["W/" + tag], tag)
    assert not etag.none_match_hits(['"a"'], tag)
    assert not etag.none_match_hits([], tag)
    assert not etag.none_match_hits([tag.strip('"')], tag)

"""Downloads of a job's file through the real API and workers (SPEC §9): ranges, If-Range, 416,
alike whether the file lies on local disk or in an S3 store (moto_server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from services.query_api.jobs import downloads
from shared import api_keys
from tests.conftest import Api, Workers, assert_problem
from tests.factories import make_cliente, make_compra
from tests.jobs import download, new_key, settle
from tests.stacks import own_stack


@dataclass(frozen=True)
class Finished:
    """A succeeded export and its whole file, as the API serves it."""

    http: httpx.Client
    anonymous: httpx.Client
    job: dict[str, Any]
    content: bytes

    @property
    def url(self) -> str:
        return str(self.job["result"]["download_url"])

    @property
    def etag(self) -> str:
        return f'"{self.job["result"]["sha256"]}"'


# Each purchase's description in the file: 40 purchases make a file of a few kilobytes, read in
# one go, or one of several chunks, streamed.
DESCRIPTIONS = {"one-chunk": "Compra de prueba", "chunks": "x" * (downloads.CHUNK_BYTES // 20)}


def succeeded_export(
    http: httpx.Client,
    engine: Engine,
    purchases: int = 40,
    descripcion: str = DESCRIPTIONS["one-chunk"],
) -> dict[str, Any]:
    cliente = make_cliente(engine)
    for _ in range(purchases):
        make_compra(engine, cliente, descripcion=descripcion)
    created = http.post(f"/api/clientes/{cliente.id}/exportar", params={"formato": "csv"})
    job = settle(http, created.json()["id"])
    assert job["status"] == "succeeded", job
    return job


@pytest.fixture(scope="module")
def s3_api(
    service_env: dict[str, str], s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Api, Engine]]:
    """An API and workers whose files live in an S3 store."""
    s3 = {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_BUCKET": "clientes-downloads",
        "S3_ACCESS_KEY_ID": "testing",
        "S3_SECRET_ACCESS_KEY": "testing",
    }
    with own_stack(service_env, tmp_path_factory.mktemp("s3"), "s3", **s3) as stack:
        yield stack.api, stack.engine


@pytest.fixture(
    scope="module",
    params=[(backend, size) for backend in ("local", "s3") for size in DESCRIPTIONS],
    ids="-".join,
)
def finished(
    request: pytest.FixtureRequest, api: Api, workers: Workers, engine: Engine
) -> Iterator[Finished]:
    backend, size = request.param
    if backend == "s3":
        api, engine = request.getfixturevalue("s3_api")
    else:
        workers.start()
    with api.client() as http, api.client(key=None) as anonymous:
        job = succeeded_export(http, engine, descripcion=DESCRIPTIONS[size])
        content = download(http, job).content
        assert (len(content) > downloads.CHUNK_BYTES) == (size == "chunks")
        yield Finished(http, anonymous, job, content)


def test_whole_file_announces_ranges(finished: Finished) -> None:
    response = finished.http.get(finished.url)
    assert response.status_code == 200
    assert response.headers["accept-ranges"] == "bytes"
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-99", 0, 99),
        ("bytes=100-", 100, None),
        ("bytes=-10", -10, None),
        ("bytes=5-999999999", 5, None),  # past the end: up to the end
    ],
)
def test_a_range_gets_206_and_those_bytes(
    finished: Finished, asked: str, first: int, last: int | None
) -> None:
    size = len(finished.content)
    expected = finished.content[first : None if last is None else last + 1]
    response = finished.http.get(finished.url, headers={"Range": asked})
    assert response.status_code == 206, response.text
    assert response.content == expected
    assert int(response.headers["content-length"]) == len(expected)
    start = first % size
    assert response.headers["content-range"] == f"bytes {start}-{start + len(expected) - 1}/{size}"
    assert response.headers["etag"] == finished.etag
    assert response.headers["content-type"] == finished.job["result"]["content_type"]


def test_resuming_a_download_rebuilds_the_file(finished: Finished) -> None:
    half = len(finished.content) // 2
    first = finished.http.get(finished.url, headers={"Range": f"bytes=0-{half - 1}"})
    rest = finished.http.get(
        finished.url, headers={"Range": f"bytes={half}-", "If-Range": finished.etag}
    )
    assert (first.status_code, rest.status_code) == (206, 206)
    assert first.content + rest.content == finished.content


@pytest.mark.parametrize("asked", ["bytes=999999999-", "bytes=-0"])
def test_a_range_past_the_end_is_416(finished: Finished, asked: str) -> None:
    response = finished.http.get(finished.url, headers={"Range": asked})
    assert_problem(response, 416)
    assert response.headers["content-range"] == f"bytes */{len(finished.content)}"


@pytest.mark.parametrize("validator", ['"0000"', 'W/"{sha}"', "Wed, 02 Dec 2026 10:00:00 GMT"])
def test_if_range_for_another_file_gets_the_whole_file(finished: Finished, validator: str) -> None:
    if_range = validator.format(sha=finished.job["result"]["sha256"])
    response = finished.http.get(finished.url, headers={"Range": "bytes=0-9", "If-Range": if_range})
    assert response.status_code == 200
    assert response.content == finished.content


@pytest.mark.parametrize("asked", ["bytes=0-1,5-9", "items=0-9", "bytes=9-0", "bytes=x-y"])
def test_ranges_not_served_get_the_whole_file(finished: Finished, asked: str) -> None:
    response = finished.http.get(finished.url, headers={"Range": asked})
    assert response.status_code == 200
    assert response.content == finished.content


# Signed links.


def test_signed_url_downloads_without_a_key(finished: Finished) -> None:
    signed = finished.job["result"]["signed_url"]
    assert signed.startswith(finished.url + "?expires=")
    response = finished.anonymous.get(signed)
    assert response.status_code == 200, response.text
    assert response.content == finished.content
    assert response.headers["etag"] == finished.etag
    ranged = finished.anonymous.get(signed, headers={"Range": "bytes=3-12"})
    assert ranged.status_code == 206
    assert ranged.content == finished.content[3:13]


def test_without_key_or_link_a_download_is_401(finished: Finished) -> None:
    assert_problem(finished.anonymous.get(finished.url), 401)


def link_parts(signed: str) -> dict[str, str]:
    return dict(httpx.URL(signed).params)


def test_signed_url_lasts_an_hour_at_most(http: httpx.Client, engine: Engine) -> None:
    job = http.get(f"/api/jobs/{succeeded_export(http, engine, purchases=1)['id']}").json()
    expires = int(link_parts(job["result"]["signed_url"])["expires"])
    now = datetime.now(UTC).timestamp()
    assert now + 3600 - 60 <= expires <= now + 3600
    assert expires <= datetime.fromisoformat(job["expires_at"]).timestamp()


def test_signed_url_never_outlives_the_result(http: httpx.Client, engine: Engine) -> None:
    job = succeeded_export(http, engine, purchases=1)
    soon = datetime.now(UTC) + timedelta(minutes=10)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET expires_at = :soon WHERE id = :id"),
            {"soon": soon, "id": job["id"]},
        )
    signed = http.get(f"/api/jobs/{job['id']}").json()["result"]["signed_url"]
    assert int(link_parts(signed)["expires"]) == int(soon.timestamp())


def tampered(signed: str) -> list[str]:
    url = httpx.URL(signed)
    parts = link_parts(signed)
    flipped = parts["signature"][:-1] + ("0" if parts["signature"][-1] != "0" else "1")
    return [
        str(url.copy_set_param("signature", flipped)),
        str(url.copy_set_param("expires", str(int(parts["expires"]) + 3600))),
        str(url.copy_set_param("signature", parts["signature"].upper())),
        str(url.copy_remove_param("signature")),
        str(url.copy_remove_param("expires")),
        str(url.copy_set_param("expires", "soon")),
    ]


def test_a_tampered_link_is_403(finished: Finished) -> None:
    for signed in tampered(finished.job["result"]["signed_url"]):
        body = assert_problem(finished.anonymous.get(signed), 403)
        assert "signature" in str(body["detail"]) or "signed link" in str(body["detail"])


def test_a_link_signs_one_job_only(
    http: httpx.Client, anonymous: httpx.Client, engine: Engine
) -> None:
    one, other = (succeeded_export(http, engine, purchases=1) for _ in range(2))
    query = httpx.URL(one["result"]["signed_url"]).query.decode()
    assert_problem(anonymous.get(f"{other['result']['download_url']}?{query}"), 403)


def test_an_expired_link_is_403(
    http: httpx.Client, anonymous: httpx.Client, engine: Engine
) -> None:
    job = succeeded_export(http, engine, purchases=1)
    moment = datetime.now(UTC) + timedelta(seconds=2)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE jobs SET expires_at = :at WHERE id = :id"), {"at": moment, "id": job["id"]}
        )
    signed = http.get(f"/api/jobs/{job['id']}").json()["result"]["signed_url"]
    time.sleep(max(0.0, moment.timestamp() - time.time()) + 1.1)
    body = assert_problem(anonymous.get(signed), 403)
    assert "expired" in str(body["detail"])


def test_a_revoked_key_takes_its_links_along(
    api: Api, anonymous: httpx.Client, http: httpx.Client, engine: Engine
) -> None:
    key = new_key(engine, ["export"])
    with api.client(key) as owner:
        job = succeeded_export(owner, engine, purchases=1)
    assert anonymous.get(job["result"]["signed_url"]).status_code == 200
    with engine.begin() as connection:
        key_id = connection.execute(
            text("SELECT api_key_id FROM jobs WHERE id = :id"), {"id": job["id"]}
        ).scalar_one()
        connection.execute(api_keys.revoke_key(key_id))
        connection.execute(api_keys.NOTIFY_CHANGED)
    assert_problem(anonymous.get(job["result"]["signed_url"]), 404)


def test_only_a_succeeded_job_has_a_signed_url(http: httpx.Client, engine: Engine) -> None:
    job = succeeded_export(http, engine, purchases=1)
    assert http.delete(f"/api/jobs/{job['id']}").status_code == 204
    discarded = http.get(f"/api/jobs/{job['id']}").json()
    assert discarded["status"] == "expired"
    assert discarded["result"] is None or discarded["result"]["signed_url"] is None
    assert_problem(http.get(job["result"]["signed_url"]), 410)

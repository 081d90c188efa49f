"""Downloads of a job's file through the real API and workers (SPEC §9): ranges, If-Range, 416,
alike whether the file lies on local disk or in an S3 store (moto_server)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.conftest import Api, Workers, assert_problem
from tests.factories import make_cliente, make_compra
from tests.jobs import download, settle
from tests.stacks import own_stack


@dataclass(frozen=True)
class Finished:
    """A succeeded export and its whole file, as the API serves it."""

    http: httpx.Client
    job: dict[str, Any]
    content: bytes

    @property
    def url(self) -> str:
        return str(self.job["result"]["download_url"])

    @property
    def etag(self) -> str:
        return f'"{self.job["result"]["sha256"]}"'


def finished_export(http: httpx.Client, engine: Engine) -> Finished:
    cliente = make_cliente(engine)
    for _ in range(40):  # enough purchases for a file of a few kilobytes
        make_compra(engine, cliente)
    created = http.post(f"/api/clientes/{cliente.id}/exportar", params={"formato": "csv"})
    job = settle(http, created.json()["id"])
    assert job["status"] == "succeeded", job
    return Finished(http, job, download(http, job).content)


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


@pytest.fixture(scope="module", params=["local", "s3"])
def finished(
    request: pytest.FixtureRequest, api: Api, workers: Workers, engine: Engine
) -> Iterator[Finished]:
    if request.param == "s3":
        api, engine = request.getfixturevalue("s3_api")
    else:
        workers.start()
    with api.client() as http:
        yield finished_export(http, engine)


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

"""Both storage backends pass the same tests: local files, and S3 against a real S3-compatible
HTTP server (moto_server in its own process)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from harness import servers
from shared import storage
from shared.settings import Settings

KEY = "jobs/4b1f0c9e-7d2a-4c51-9a59-0d6f3f0b9c11/cliente_CC_1020304050.csv"
BAD_KEYS = [
    "",
    "../escape.csv",
    "jobs/../../escape.csv",
    "jobs/..",
    "/etc/passwd",
    "jobs//double-slash.csv",
    "jobs/./dot.csv",
    ".hidden",
    "jobs/",
    "jobs\\windows.csv",
    "jobs/línea.csv",
    "jobs/new\nline.csv",
    "jobs/space here.csv",
    "a" * 1025,
]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = servers.free_port()
    moto_server = str(Path(sys.executable).parent / "moto_server")
    process = servers.Process(
        f"moto-{port}", [moto_server, "-H", "127.0.0.1", "-p", str(port)], dict(os.environ)
    ).start()
    url = f"http://127.0.0.1:{port}"
    try:
        servers.wait_until(lambda: httpx.get(f"{url}/moto-api/").status_code == 200, 30, "moto")
        yield url
    finally:
        process.stop()


def s3_settings(endpoint: str, bucket: str) -> Settings:
    return Settings(
        storage_backend="s3",
        s3_endpoint_url=endpoint,
        s3_bucket=bucket,
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
    )


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> storage.Storage:
    if request.param == "local":
        settings = Settings(storage_backend="local", storage_dir=str(tmp_path / "exports"))
    else:
        # A bucket of its own that does not exist yet: the first save creates it.
        bucket = f"clientes-test-{uuid.uuid4().hex[:12]}"
        settings = s3_settings(request.getfixturevalue("s3_endpoint"), bucket)
    return storage.get_storage(settings)


def a_file(directory: Path, content: bytes) -> Path:
    path = directory / f"source-{uuid.uuid4().hex}"
    path.write_bytes(content)
    return path


def test_save_then_read_back(backend: storage.Storage, tmp_path: Path) -> None:
    content = "Nombre,Apellido\r\nJosé,Núñez\r\n".encode("utf-8-sig")
    source = a_file(tmp_path, content)
    assert not backend.exists(KEY)

    assert backend.save(KEY, source) == len(content)

    assert source.read_bytes() == content  # the source is left in place
    assert backend.exists(KEY)
    with backend.open(KEY) as stored:
        assert stored.read() == content


def test_open_streams_in_chunks(backend: storage.Storage, tmp_path: Path) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    backend.save(KEY, a_file(tmp_path, content))
    chunks = []
    with backend.open(KEY) as stored:
        while chunk := stored.read(256 * 1024):
            assert len(chunk) <= 256 * 1024
            chunks.append(chunk)
    assert len(chunks) > 10
    assert b"".join(chunks) == content


def test_save_replaces_an_earlier_file(backend: storage.Storage, tmp_path: Path) -> None:
    backend.save(KEY, a_file(tmp_path, b"first attempt, longer than the second"))
    backend.save(KEY, a_file(tmp_path, b"second"))
    with backend.open(KEY) as stored:
        assert stored.read() == b"second"


def test_delete_is_idempotent(backend: storage.Storage, tmp_path: Path) -> None:
    backend.save(KEY, a_file(tmp_path, b"x"))
    backend.delete(KEY)
    assert not backend.exists(KEY)
    backend.delete(KEY)
    with pytest.raises(FileNotFoundError):
        backend.open(KEY)


def test_list_files_finds_what_is_under_a_prefix(backend: storage.Storage, tmp_path: Path) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    under = ["jobs/a/1/one.csv", "jobs/a/2/two.csv", "jobs/b/1/three.csv"]
    for key in [*under, "other/four.csv"]:
        backend.save(key, a_file(tmp_path, b"x"))
    listed = list(backend.list_files("jobs/"))
    assert sorted(stored.key for stored in listed) == under
    assert all(before < stored.modified_at <= datetime.now(UTC) for stored in listed)
    assert list(backend.list_files("nothing/")) == []


def test_missing_key(backend: storage.Storage) -> None:
    assert not backend.exists("jobs/never-stored.csv")
    with pytest.raises(FileNotFoundError):
        backend.open("jobs/never-stored.csv")


@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_that_could_escape_are_refused(
    backend: storage.Storage, tmp_path: Path, key: str
) -> None:
    source = a_file(tmp_path, b"payload")
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match="invalid storage key"):
        backend.save(key, source)
    for operation in (backend.open, backend.exists, backend.delete, backend.local_path):
        with pytest.raises(ValueError, match="invalid storage key"):
            operation(key)
    assert sorted(tmp_path.rglob("*")) == before


def test_local_path_only_for_local_files(backend: storage.Storage, tmp_path: Path) -> None:
    backend.save(KEY, a_file(tmp_path, b"zero copy"))
    path = backend.local_path(KEY)
    if isinstance(backend, storage.LocalStorage):
        assert path is not None and path.read_bytes() == b"zero copy"
        assert path.is_relative_to(tmp_path / "exports")
    else:
        assert path is None


def test_local_save_is_atomic_and_leaves_no_partial_file(tmp_path: Path) -> None:
    backend = storage.LocalStorage(tmp_path / "exports")
    backend.save(KEY, a_file(tmp_path, b"complete"))
    folder = (tmp_path / "exports" / KEY).parent
    assert [path.name for path in folder.iterdir()] == ["cliente_CC_1020304050.csv"]


def test_s3_bucket_is_created_when_missing(s3_endpoint: str, tmp_path: Path) -> None:
    bucket = f"clientes-new-{uuid.uuid4().hex[:12]}"
    backend = storage.get_storage(s3_settings(s3_endpoint, bucket))
    assert isinstance(backend, storage.S3Storage)
    backend.save(KEY, a_file(tmp_path, b"x"))
    listed = backend.client.list_objects_v2(Bucket=bucket)
    assert [item["Key"] for item in listed["Contents"]] == [KEY]


def test_unreachable_s3_is_storage_unavailable(tmp_path: Path) -> None:
    closed_port = servers.free_port()
    backend = storage.get_storage(s3_settings(f"http://127.0.0.1:{closed_port}", "clientes"))
    with pytest.raises(storage.StorageUnavailable):
        backend.save(KEY, a_file(tmp_path, b"x"))


def test_unwritable_disk_is_storage_unavailable(tmp_path: Path) -> None:
    not_a_directory = a_file(tmp_path, b"a file where the storage root should be")
    backend = storage.LocalStorage(not_a_directory)
    with pytest.raises(storage.StorageUnavailable):
        backend.save(KEY, a_file(tmp_path, b"x"))


def test_default_storage_is_shared_and_follows_settings() -> None:
    assert storage.get_storage() is storage.get_storage()
    assert isinstance(storage.get_storage(Settings(storage_backend="local")), storage.LocalStorage)

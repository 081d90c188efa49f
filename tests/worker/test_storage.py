"""Both storage backends pass the same tests: local files, and S3 against a real S3-compatible
HTTP server (moto_server in its own process)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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


@pytest.mark.parametrize(
    ("first", "last"), [(0, 0), (0, 9), (1000, 1999), (3 * 1024 * 1024, 3 * 1024 * 1024 + 16)]
)
def test_open_a_byte_range(backend: storage.Storage, tmp_path: Path, first: int, last: int) -> None:
    content = os.urandom(3 * 1024 * 1024 + 17)
    backend.save(KEY, a_file(tmp_path, content))
    with backend.open(KEY, storage.ByteRange(first, last)) as stored:
        assert stored.read(4) == content[first : min(first + 4, last + 1)]
        assert stored.read() == content[first + 4 : last + 1]
        assert stored.read(10) == b""


def test_s3_range_is_asked_of_the_store(s3_endpoint: str, tmp_path: Path) -> None:
    """The object store sends only the range: the API never pulls a whole object for a part."""
    backend = storage.get_storage(s3_settings(s3_endpoint, f"clientes-{uuid.uuid4().hex[:12]}"))
    assert isinstance(backend, storage.S3Storage)
    backend.save(KEY, a_file(tmp_path, os.urandom(5 * 1024 * 1024)))
    answers: list[dict[str, Any]] = []
    backend.client.meta.events.register(
        "after-call.s3.GetObject", lambda parsed, **_: answers.append(parsed)
    )
    with backend.open(KEY, storage.ByteRange(100, 199)) as stored:
        assert len(stored.read()) == 100
    assert [answer["ContentLength"] for answer in answers] == [100]
    assert answers[0]["ContentRange"] == f"bytes 100-199/{5 * 1024 * 1024}"


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


def test_local_delete_removes_the_folders_it_empties_and_no_other(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    backend = storage.LocalStorage(root)
    job = "jobs/4b1f0c9e-7d2a-4c51-9a59-0d6f3f0b9c11"
    first, second = f"{job}/1/cliente.csv", f"{job}/2/cliente.csv"
    for key in (first, second, "jobs/other/1/kept.csv"):
        backend.save(key, a_file(tmp_path, b"x"))

    backend.delete(first)
    assert not (root / job / "1").exists()
    assert (root / second).is_file()  # the job's other attempt keeps its folders

    backend.delete(second)
    assert not (root / job).exists()
    assert (root / "jobs/other/1/kept.csv").is_file()
    backend.delete("jobs/other/1/kept.csv")
    assert root.is_dir() and not any(root.iterdir())  # the root itself stays
    backend.save(first, a_file(tmp_path, b"again"))  # and saving makes the folders again
    assert (root / first).read_bytes() == b"again"


def test_local_save_survives_its_folder_removed_before_the_file_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete of the folder's last other file can remove it between save's mkdir and its
    open: the moment is reproduced here by removing the folder right after the first mkdir."""
    backend = storage.LocalStorage(tmp_path / "exports")
    folder = (tmp_path / "exports" / KEY).parent
    real_mkdir = Path.mkdir
    calls = []

    def mkdir_then_lose_it(self: Path, *args: Any, **kwargs: Any) -> None:
        real_mkdir(self, *args, **kwargs)
        if self == folder and kwargs.get("parents"):  # save's call, not pathlib's own inside it
            calls.append(self)
            if len(calls) == 1:
                self.rmdir()

    monkeypatch.setattr(Path, "mkdir", mkdir_then_lose_it)
    backend.save(KEY, a_file(tmp_path, b"complete"))
    assert len(calls) == 2  # made, lost, made again
    assert (folder / "cliente_CC_1020304050.csv").read_bytes() == b"complete"


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

"""Where finished files live: one small interface, two backends (SPEC §4 storage).

`STORAGE_BACKEND=local` keeps them under `STORAGE_DIR`; `s3` puts them in any S3-compatible
store, so that workers and APIs on different hosts share results. Keys look like relative paths
(`jobs/<uuid>/<attempt>/cliente_CC_1020304050.csv`) and are validated by both backends: a key
can never point outside its root or bucket prefix.

Errors: `ValueError` for a malformed key, `FileNotFoundError` for a missing one, and
`StorageUnavailable` when the disk or the store cannot be reached (worth retrying).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, cast

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
MAX_KEY_LENGTH = 1024  # S3's limit, in bytes; keys are ASCII


class StorageUnavailable(Exception):
    """The disk or the object store could not be reached or written: transient, retry later."""


def validate_key(key: str) -> str:
    """Refuse anything that could leave the storage root: `..` segments, absolute paths,
    backslashes, empty segments, control or non-ASCII characters."""
    segments = key.split("/")
    if (
        len(key) > MAX_KEY_LENGTH
        or not _KEY.fullmatch(key)
        or any(segment in {"", ".", ".."} for segment in segments)
    ):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str
    modified_at: datetime  # aware, UTC: when the file was last written


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes `first` to `last` of a file, both included (HTTP's convention)."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


class _Window(io.RawIOBase):
    """At most `length` bytes of an open file, from where it stands: a range of a local file."""

    def __init__(self, file: BinaryIO, length: int) -> None:
        self._file = file
        self._remaining = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._remaining)
        if wanted <= 0:
            return 0
        data = self._file.read(wanted)
        buffer[: len(data)] = data
        self._remaining -= len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class Storage(Protocol):
    def save(self, key: str, source: Path) -> int:
        """Store a finished file under `key` (replacing any earlier one); returns its size.
        The source file is left in place."""
        ...

    def open(self, key: str, byte_range: ByteRange | None = None) -> BinaryIO:
        """The stored file, streamed (never read whole into memory); with `byte_range`, only
        those bytes, fetched from the store as such (an HTTP Range download)."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A real file path when the backend is local (zero-copy downloads), else None."""
        ...

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing key is fine."""
        ...

    def exists(self, key: str) -> bool: ...

    def list_files(self, prefix: str) -> Iterator[StoredFile]:
        """Every stored file whose key starts with `prefix` (a folder, ending in `/`), in no
        particular order; with a local backend, unfinished saves (`.….partial`) too."""
        ...


@contextlib.contextmanager
def _disk_errors_are_unavailable() -> Iterator[None]:
    try:
        yield
    except FileNotFoundError:
        raise
    except IsADirectoryError as error:  # a key that names a folder names no file
        raise FileNotFoundError(str(error)) from error
    except OSError as error:
        raise StorageUnavailable(f"local storage: {error}") from error


class LocalStorage:
    """Files under a root directory. A save is atomic: readers see the old file or the new
    one, never half of one."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def save(self, key: str, source: Path) -> int:
        path = self._path(key)
        with source.open("rb") as reader, _disk_errors_are_unavailable():
            # Same directory as the target, so that os.replace is an atomic rename.
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
            try:
                with _create_in_folder(partial) as writer:
                    shutil.copyfileobj(reader, writer, 1024 * 1024)
                    writer.flush()
                    os.fsync(writer.fileno())
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)
            return path.stat().st_size

    def open(self, key: str, byte_range: ByteRange | None = None) -> BinaryIO:
        path = self._path(key)
        with _disk_errors_are_unavailable():
            file = path.open("rb")
            if byte_range is None:
                return file
            file.seek(byte_range.first)
            return cast(BinaryIO, _Window(file, byte_range.length))

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with _disk_errors_are_unavailable():
            path.unlink(missing_ok=True)
            self._remove_empty_folders(path.parent)

    def _remove_empty_folders(self, folder: Path) -> None:
        """`folder` and the folders above it that the delete left empty, up to the root: a job
        leaves two (jobs/<id>/<attempt>/), and at a hundred jobs a second emptied ones would
        pile up by millions a day, each an inode that the orphan sweep walks."""
        while folder != self.root:  # a key's folders all lie under it (validate_key)
            try:
                folder.rmdir()
            except OSError:  # not empty (another file, a save under way), or already gone
                return
            folder = folder.parent

    def exists(self, key: str) -> bool:
        path = self._path(key)
        with _disk_errors_are_unavailable():
            return path.is_file()

    def list_files(self, prefix: str) -> Iterator[StoredFile]:
        folder = self._path(prefix.rstrip("/"))
        with _disk_errors_are_unavailable():
            for directory, _, names in os.walk(folder):
                for name in names:
                    path = Path(directory) / name
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                        modified = path.stat().st_mtime
                        yield StoredFile(
                            path.relative_to(self.root).as_posix(),
                            datetime.fromtimestamp(modified, UTC),
                        )


def _create_in_folder(path: Path, tries: int = 3) -> io.BufferedWriter:
    """`path` opened for writing, its folder made first. A delete of the folder's last other
    file may remove the folder between the two (LocalStorage._remove_empty_folders): then the
    folder is made again."""
    attempt = 1
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return path.open("wb")
        except FileNotFoundError:
            if attempt == tries:
                raise
            attempt += 1


def _is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in {
        "404",
        "NoSuchKey",
        "NoSuchBucket",
        "NotFound",
    }


@contextlib.contextmanager
def _s3_errors(key: str) -> Iterator[None]:
    """Unreachable store or a server-side error (5xx) → StorageUnavailable; missing key →
    FileNotFoundError; anything else (denied, bad bucket name) propagates as it is."""
    try:
        yield
    except (BotoConnectionError, HTTPClientError, S3UploadFailedError) as error:
        raise StorageUnavailable(f"s3 storage: {error}") from error
    except ClientError as error:
        if _is_missing(error):
            raise FileNotFoundError(key) from error
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500:
            raise StorageUnavailable(f"s3 storage: {error}") from error
        raise


class S3Storage:
    """Objects in a bucket of any S3-compatible store (MinIO in compose), created if missing."""

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self._bucket_checked = False

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=settings.s3_secret_access_key,
            config=Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"mode": "standard", "max_attempts": 3},
                # MinIO and most self-hosted stores serve buckets as paths, not subdomains.
                s3={"addressing_style": "path"},
            ),
        )
        return cls(client, settings.s3_bucket)

    def _ensure_bucket(self) -> None:
        if self._bucket_checked:
            return
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if not _is_missing(error):
                raise
            with contextlib.suppress(
                self.client.exceptions.BucketAlreadyOwnedByYou,
                self.client.exceptions.BucketAlreadyExists,  # created meanwhile by another worker
            ):
                self.client.create_bucket(Bucket=self.bucket)
        self._bucket_checked = True

    def save(self, key: str, source: Path) -> int:
        validate_key(key)
        size = source.stat().st_size
        with _s3_errors(key):
            self._ensure_bucket()
            self.client.upload_file(str(source), self.bucket, key)
        return size

    def open(self, key: str, byte_range: ByteRange | None = None) -> BinaryIO:
        validate_key(key)
        # The store sends only the range asked for: never the whole object for a part of it.
        with _s3_errors(key):
            if byte_range is None:
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            else:
                asked = f"bytes={byte_range.first}-{byte_range.last}"
                body = self.client.get_object(Bucket=self.bucket, Key=key, Range=asked)["Body"]
        # botocore's StreamingBody is a readable io.IOBase over the HTTP response.
        return cast(BinaryIO, body)

    def local_path(self, key: str) -> Path | None:
        validate_key(key)
        return None

    def delete(self, key: str) -> None:
        validate_key(key)
        with _s3_errors(key):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            with _s3_errors(key):
                self.client.head_object(Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return False
        return True

    def list_files(self, prefix: str) -> Iterator[StoredFile]:
        validate_key(prefix.rstrip("/"))
        try:
            with _s3_errors(prefix):
                pages = self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                )
                for page in pages:
                    for item in page.get("Contents", []):
                        yield StoredFile(item["Key"], item["LastModified"].astimezone(UTC))
        except FileNotFoundError:  # no bucket yet: nothing stored
            return


def get_storage(settings: Settings | None = None) -> Storage:
    """The configured backend; without arguments, one shared instance per process."""
    if settings is None:
        return _default_storage()
    if settings.storage_backend == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(Path(settings.storage_dir))


@lru_cache(maxsize=1)
def _default_storage() -> Storage:
    return get_storage(get_settings())

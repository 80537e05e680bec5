"""The raw landing store: objects by key, on a local folder (the default) or on S3.

Both backends keep the same contract: ``put`` is durable when it returns and a
reader never sees a partly written object; ``list`` yields keys in lexicographic
order across all pages, resuming after ``start_after``; every failure surfaces as
``StorageError`` carrying the key (the webhook receiver answers 503 on it).

S3 endpoint, region and credentials come from the standard AWS variables only
(``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_REGION``/``AWS_DEFAULT_REGION``,
``AWS_ACCESS_KEY_ID``..., ``AWS_MAX_ATTEMPTS``), read by boto3 itself. Every put
asks for server-side encryption: SSE-S3 (AES256) by default, SSE-KMS with the key
named by ``HOSTPMS_S3_KMS_KEY_ID`` when that variable is set.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from botocore.client import BaseClient

KMS_KEY_ID_VARIABLE = "HOSTPMS_S3_KMS_KEY_ID"
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_TEMP_PREFIX = "."  # in-flight local writes; keys may not have segments starting with it
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class StorageError(Exception):
    """A storage operation failed; ``key`` names the object, the cause is chained."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{message} (key {key!r})")
        self.key = key


class ObjectNotFoundError(StorageError):
    """The object does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime


class ObjectStore(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> str: ...

    def get(self, key: str) -> bytes: ...

    def get_location(self, location: str) -> bytes: ...

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]: ...

    def exists(self, key: str) -> bool: ...

    def location(self, key: str) -> str: ...


def validate_key(key: str) -> str:
    """Accept only plain relative POSIX keys, so a key can never escape the store."""
    parts = key.split("/")
    if not key or any(not part or part.startswith(_TEMP_PREFIX) for part in parts):
        raise StorageError(key, "invalid key: needs non-empty segments not starting with '.'")
    return key


class LocalObjectStore:
    """Objects as files under ``root``; writes are atomic and fsynced."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()
        self.url = str(self.root)
        # Folders this process has created or seen, with their entries fsynced: a put
        # into one of them skips the stat of every parent folder.
        self._known_folders: set[str] = set()
        self._folder_syncs = _FolderSyncs()

    def location(self, key: str) -> str:
        return str(self.root / validate_key(key))

    def put(self, key: str, data: bytes) -> str:
        # Plain strings, not Path objects: this runs once per webhook, on the hot path.
        path = f"{self.url}/{validate_key(key)}"
        folder = path.rpartition("/")[0]
        try:
            try:
                self._write(folder, path, data)
            except FileNotFoundError:
                # A folder we knew was removed behind our back: create it again, once.
                self._known_folders.discard(folder)
                self._write(folder, path, data)
        except OSError as error:
            raise StorageError(key, f"cannot write to {self.url}: {error.strerror}") from error
        return path

    def _write(self, folder: str, path: str, data: bytes) -> None:
        if folder not in self._known_folders:
            self._make_folders(Path(folder))
            self._known_folders.add(folder)
        _write_atomically(folder, path, data)
        self._folder_syncs.sync(folder)

    def get(self, key: str) -> bytes:
        try:
            return Path(self.location(key)).read_bytes()
        except FileNotFoundError as error:
            raise ObjectNotFoundError(key, f"no such object in {self.url}") from error
        except OSError as error:
            raise StorageError(key, f"cannot read from {self.url}: {error.strerror}") from error

    def get_location(self, location: str) -> bytes:
        path = Path(
            unquote(urlsplit(location).path) if location.startswith("file://") else location
        )
        if not path.is_relative_to(self.root):
            raise StorageError(location, f"location is outside the store {self.url}")
        return self.get(path.relative_to(self.root).as_posix())

    def exists(self, key: str) -> bool:
        return Path(self.location(key)).is_file()

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        # Walking order is not key order ("a-b" sorts before "a/b"), so collect, then sort.
        try:
            keys = sorted(
                key
                for key in self._keys_under(_directory_of(prefix))
                if key.startswith(prefix) and (start_after is None or key > start_after)
            )
        except OSError as error:
            raise StorageError(prefix, f"cannot list {self.url}: {error.strerror}") from error
        for key in keys:
            yield self._info(key)

    def _keys_under(self, directory: str) -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root / directory, onerror=_unless_missing):
            dirnames[:] = [name for name in dirnames if not name.startswith(_TEMP_PREFIX)]
            relative = PurePosixPath(Path(dirpath).relative_to(self.root).as_posix())
            for name in filenames:
                if not name.startswith(_TEMP_PREFIX):
                    yield (relative / name).as_posix()

    def _info(self, key: str) -> ObjectInfo:
        try:
            stat = (self.root / key).stat()
        except OSError as error:
            raise StorageError(
                key, f"cannot stat object in {self.url}: {error.strerror}"
            ) from error
        return ObjectInfo(key, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC))

    def _make_folders(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, fsyncing each new entry into its parent."""
        missing = [path for path in (folder, *folder.parents) if not path.is_dir()]
        for path in reversed(missing):
            path.mkdir(exist_ok=True)
            _fsync_directory(str(path.parent))


def _unless_missing(error: OSError) -> None:
    """Make ``os.walk`` raise on unreadable folders (it skips them silently by default)."""
    if not isinstance(error, FileNotFoundError):
        raise error


def _directory_of(prefix: str) -> str:
    """The deepest folder that holds every key starting with ``prefix``."""
    return prefix.rpartition("/")[0]


def _write_atomically(folder: str, path: str, data: bytes) -> None:
    """Write and fsync a temporary file, then rename it over ``path`` (the caller fsyncs
    the folder). The random name keeps concurrent writers, and other processes, apart."""
    temp_path = f"{folder}/{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
    descriptor = os.open(temp_path, _TEMP_FLAGS, 0o600)
    try:
        try:
            _write_all(descriptor, data)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temp_path, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp_path)
        raise


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _fsync_directory(directory: str) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class _FolderSyncs:
    """Group commit of folder entries: one fsync of a folder makes every rename into it
    that finished before the fsync began durable. Concurrent puts into one folder (the
    webhook receiver's threads) share fsyncs instead of queueing one each, and a put
    returns only once an fsync that began after its own rename has succeeded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._folders: dict[str, _FolderSync] = {}

    def sync(self, folder: str) -> None:
        syncer = self._folders.get(folder)
        if syncer is None:
            with self._lock:
                syncer = self._folders.setdefault(folder, _FolderSync(folder))
        syncer.sync()


class _FolderSync:
    def __init__(self, folder: str) -> None:
        self.folder = folder
        self._changed = threading.Condition()
        self._renamed = 0  # renames registered so far (tickets handed out)
        self._durable = 0  # every ticket up to this one is covered by a finished fsync
        self._syncing = False

    def sync(self) -> None:
        with self._changed:
            self._renamed += 1
            ticket = self._renamed
            while self._durable < ticket:
                if self._syncing:
                    self._changed.wait()  # that fsync may have begun before our rename
                else:
                    self._fsync_for_everyone()

    def _fsync_for_everyone(self) -> None:
        """Called holding the lock; fsyncs without it. On failure, every waiter that the
        fsync would have covered tries again itself (and gets its own error)."""
        self._syncing = True
        covered = self._renamed
        self._changed.release()
        try:
            _fsync_directory(self.folder)
        finally:
            self._changed.acquire()
            self._syncing = False
            self._changed.notify_all()
        self._durable = max(self._durable, covered)


class S3ObjectStore:
    """Objects under ``s3://bucket/prefix/``; every put requests server-side encryption."""

    def __init__(
        self, bucket: str, prefix: str, client: BaseClient, kms_key_id: str | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._encryption: dict[str, str] = (
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id}
            if kms_key_id
            else {"ServerSideEncryption": "AES256"}
        )

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full_key(key)}"

    def put(self, key: str, data: bytes) -> str:
        with self._errors(key, "write"):
            self.client.put_object(
                Bucket=self.bucket, Key=self._full_key(key), Body=data, **self._encryption
            )
        return self.location(key)

    def get(self, key: str) -> bytes:
        with self._errors(key, "read"):
            response = self.client.get_object(Bucket=self.bucket, Key=self._full_key(key))
            return response["Body"].read()

    def get_location(self, location: str) -> bytes:
        parts = urlsplit(location)
        full_key = parts.path.lstrip("/")
        key_prefix = f"{self.prefix}/" if self.prefix else ""
        if (
            parts.scheme != "s3"
            or parts.netloc != self.bucket
            or not full_key.startswith(key_prefix)
        ):
            raise StorageError(location, f"location is outside the store {self.url}")
        return self.get(full_key.removeprefix(key_prefix))

    def exists(self, key: str) -> bool:
        try:
            with self._errors(key, "check"):
                self.client.head_object(Bucket=self.bucket, Key=self._full_key(key))
        except ObjectNotFoundError:
            return False
        return True

    def list(self, prefix: str = "", start_after: str | None = None) -> Iterator[ObjectInfo]:
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._join(prefix)}
        if start_after is not None:
            arguments["StartAfter"] = self._join(start_after)
        strip = len(self._join(""))
        with self._errors(prefix, "list"):
            for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        item["Key"][strip:], item["Size"], item["LastModified"].astimezone(UTC)
                    )

    def _full_key(self, key: str) -> str:
        return self._join(validate_key(key))

    def _join(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _errors(self, key: str, action: str) -> AbstractContextManager[None]:
        return _s3_errors(key, action, self.url)


@contextmanager
def _s3_errors(key: str, action: str, url: str) -> Iterator[None]:
    """Turn botocore failures into ``StorageError`` (``ObjectNotFoundError`` on 404)."""
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND_CODES:
            raise ObjectNotFoundError(key, f"no such object in {url}") from error
        raise StorageError(key, f"cannot {action} in {url}: {code}") from error
    except BotoCoreError as error:
        raise StorageError(key, f"cannot {action} in {url}: {error}") from error


def _s3_client() -> BaseClient:
    # Imported here: boto3 takes a third of a second to import, and every Dagster run
    # worker imports this module, most of them for a local store.
    import boto3
    from botocore.config import Config

    # Fail fast on a dead endpoint: the webhook receiver must answer while the sender waits.
    return boto3.client("s3", config=Config(connect_timeout=5, read_timeout=30))


def open_store(url: str) -> ObjectStore:
    """The store at ``url``: a local path, ``file:///path`` or ``s3://bucket[/prefix]``."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageError(url, "an s3:// URL needs a bucket name")
        kms_key_id = os.environ.get(KMS_KEY_ID_VARIABLE)
        return S3ObjectStore(parts.netloc, parts.path, _s3_client(), kms_key_id)
    if parts.scheme == "file":
        return LocalObjectStore(Path(unquote(parts.path)))
    if parts.scheme == "":
        return LocalObjectStore(Path(url))
    raise StorageError(url, f"unsupported storage URL scheme {parts.scheme!r}")

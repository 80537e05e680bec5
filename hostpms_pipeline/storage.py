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
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

KMS_KEY_ID_VARIABLE = "HOSTPMS_S3_KMS_KEY_ID"
# Fail fast on a dead endpoint: the webhook receiver must answer while the sender waits.
_S3_CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=30)
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_TEMP_PREFIX = "."  # in-flight local writes; keys may not have segments starting with it


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

    def location(self, key: str) -> str:
        return str(self.root / validate_key(key))

    def put(self, key: str, data: bytes) -> str:
        path = Path(self.location(key))
        try:
            self._make_parents(path)
            _write_atomically(path, data)
        except OSError as error:
            raise StorageError(key, f"cannot write to {self.url}: {error.strerror}") from error
        return str(path)

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

    def _make_parents(self, path: Path) -> None:
        """Create missing parent folders, fsyncing each new entry into its parent."""
        missing = [parent for parent in path.parents if not parent.is_dir()]
        for folder in reversed(missing):
            folder.mkdir(exist_ok=True)
            _fsync_directory(folder.parent)


def _unless_missing(error: OSError) -> None:
    """Make ``os.walk`` raise on unreadable folders (it skips them silently by default)."""
    if not isinstance(error, FileNotFoundError):
        raise error


def _directory_of(prefix: str) -> str:
    """The deepest folder that holds every key starting with ``prefix``."""
    return prefix.rpartition("/")[0]


def _write_atomically(path: Path, data: bytes) -> None:
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=_TEMP_PREFIX, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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


def open_store(url: str) -> ObjectStore:
    """The store at ``url``: a local path, ``file:///path`` or ``s3://bucket[/prefix]``."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise StorageError(url, "an s3:// URL needs a bucket name")
        client = boto3.client("s3", config=_S3_CLIENT_CONFIG)
        return S3ObjectStore(parts.netloc, parts.path, client, os.environ.get(KMS_KEY_ID_VARIABLE))
    if parts.scheme == "file":
        return LocalObjectStore(Path(unquote(parts.path)))
    if parts.scheme == "":
        return LocalObjectStore(Path(url))
    raise StorageError(url, f"unsupported storage URL scheme {parts.scheme!r}")

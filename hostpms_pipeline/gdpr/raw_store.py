"""Redacting the raw store (a local folder or S3): every landed page and webhook drop that
holds a person is replaced by a redacted copy; on S3 every other version of the object
(the originals, when the bucket keeps versions) is deleted."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import orjson

from hostpms_pipeline import progress
from hostpms_pipeline.entities import BY_COLLECTION
from hostpms_pipeline.entities.spec import IdentifierKind
from hostpms_pipeline.gdpr.keys import Hasher
from hostpms_pipeline.gdpr.redaction import redact_records
from hostpms_pipeline.lake.raw_layout import RAW_PREFIX
from hostpms_pipeline.lake.storage import ObjectStore, S3ObjectStore, StorageError

log = logging.getLogger(__name__)
READ_THREADS = 8


@dataclass
class RawRedaction:
    files_scanned: int = 0
    files_rewritten: int = 0
    records_redacted: int = 0
    object_versions_deleted: int = 0
    identifiers: set[tuple[IdentifierKind, str]] = field(default_factory=set)
    # The redacted copies written, by location: the ledger's digests must follow them.
    rewritten: dict[str, bytes] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "files_scanned": self.files_scanned,
            "files_rewritten": self.files_rewritten,
            "records_redacted": self.records_redacted,
            "object_versions_deleted": self.object_versions_deleted,
        }


def _pages(store: ObjectStore, keys: list[str]) -> Iterator[tuple[str, bytes]]:
    with ThreadPoolExecutor(READ_THREADS) as pool:
        yield from zip(keys, pool.map(store.get, keys), strict=True)


def redact_store(
    store: ObjectStore, hasher: Hasher, suppressed: set[str], prefix: str = f"{RAW_PREFIX}/"
) -> RawRedaction:
    """Replace every object holding a record that carries a suppressed hash by its redacted copy."""
    result = RawRedaction()
    keys = [info.key for info in store.list(prefix)]
    for key, body in _pages(store, keys):
        result.files_scanned += 1
        progress.advance(progress.Advance("erasure", "raw files", "scanned", 1, total=len(keys)))
        try:
            page = orjson.loads(body)
        except orjson.JSONDecodeError:
            log.warning("raw object %s is not JSON: left as it is", key)
            continue
        spec = BY_COLLECTION.get(page.get("collection")) if isinstance(page, dict) else None
        records = page.get("data") if spec is not None else None
        if spec is None or not isinstance(records, list) or not spec.identifiers:
            continue
        redaction = redact_records(spec, records, page.get("property_id"), hasher, suppressed)
        if not redaction.changed:
            continue
        page["data"] = redaction.records
        copy = orjson.dumps(page)
        result.object_versions_deleted += replace_object(store, key, copy)
        result.rewritten[store.location(key)] = copy
        result.files_rewritten += 1
        result.records_redacted += len(redaction.matched)
        result.identifiers |= redaction.identifiers
    return result


def replace_object(store: ObjectStore, key: str, data: bytes) -> int:
    """Write ``data`` over ``key``, then delete every other version of it; returns versions deleted."""
    store.put(key, data)
    if not isinstance(store, S3ObjectStore):
        return 0  # the atomic rename replaced the original file
    return delete_other_versions(store, key)


def delete_other_versions(store: S3ObjectStore, key: str, keep_latest: bool = True) -> int:
    full_key = store._full_key(key)
    client, deleted = store.client, 0
    try:
        paginator = client.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=store.bucket, Prefix=full_key):
            entries = [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            for entry in entries:
                if entry["Key"] != full_key or (keep_latest and entry.get("IsLatest")):
                    continue
                if entry.get("VersionId") in (None, "null") and keep_latest:
                    continue  # unversioned bucket: the put replaced it
                client.delete_object(
                    Bucket=store.bucket, Key=full_key, VersionId=entry["VersionId"]
                )
                deleted += 1
    except Exception as error:  # botocore errors carry no data of ours
        raise StorageError(key, f"cannot delete old versions: {type(error).__name__}") from error
    return deleted


def delete_object(store: ObjectStore, key: str) -> int:
    """Delete an object (every version of it on S3); returns objects or versions deleted."""
    if isinstance(store, S3ObjectStore):
        deleted = delete_other_versions(store, key, keep_latest=False)
        if not deleted:
            store.client.delete_object(Bucket=store.bucket, Key=store._full_key(key))
            deleted = 1
        return deleted
    from pathlib import Path

    path = Path(store.location(key))
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    return 1

"""Polling: fetch pages from HostPMS and land each one, durably, in the raw store.

A page is written to ``{raw}/hostpms/{property_id}/polling/{timestamp}_{collection}.json``
before anything else happens; only then, in one PostgreSQL transaction, is it
recorded in the raw-file ledger and the property's checkpoint moved. A crash
between the two re-fetches that page on the next run; dedup absorbs the repeat.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
import psycopg

from hostpms_pipeline import stopping
from hostpms_pipeline.entities import BY_COLLECTION
from hostpms_pipeline.entities.schema import SOURCE
from hostpms_pipeline.errors import ConfigurationError
from hostpms_pipeline.gdpr.redaction import LandingGuard
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import FetchedPage, HostPMSClient
from hostpms_pipeline.lake import raw_integrity
from hostpms_pipeline.lake.raw_layout import polling_key
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.warehouse import checkpoints, history_passes, ledger, properties

log = logging.getLogger(__name__)

# Incremental syncs re-read this much before the checkpoint: clock skew and late
# commits on HostPMS's side; the repeats are absorbed by dedup.
INCREMENTAL_OVERLAP = timedelta(minutes=5)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
Progress = Callable[[FetchedPage], None]


@dataclass
class SyncResult:
    property_id: str
    collection: contract.Collection
    pages: int = 0
    records: int = 0
    locations: list[str] = field(default_factory=list)
    watermark: datetime | None = None
    first_pass: bool = False  # no checkpoint before: the pass read everything since its start

    def add(self, page: FetchedPage, location: str | None) -> None:
        self.pages += 1
        self.records += len(page.records)
        if location:
            self.locations.append(location)
        if page.max_updated_at and (self.watermark is None or page.max_updated_at > self.watermark):
            self.watermark = page.max_updated_at


def serialize_page(page: FetchedPage) -> bytes:
    return orjson.dumps(
        {
            "kind": "polling",
            "source": SOURCE,
            "property_id": page.property_id,
            "collection": page.collection,
            "received_at": contract.format_timestamp(page.received_at),
            "request": page.request_params,
            "next_cursor": page.next_cursor,
            "data": page.records,
        }
    )


@dataclass(frozen=True)
class LandedFile:
    """A page as it was stored: where, its bytes, and its records (redacted ones included)."""

    location: str
    body: bytes
    page: FetchedPage


def land_page(store: ObjectStore, page: FetchedPage) -> LandedFile:
    key = polling_key(page.property_id, page.collection, page.received_at)
    body = serialize_page(page)
    return LandedFile(store.put(key, body), body, page)


def _record_landed(conn: psycopg.Connection, landed: LandedFile | None) -> None:
    if landed is None:
        return
    page = landed.page
    ledger.record_landed_file(
        conn,
        location=landed.location,
        property_id=page.property_id,
        kind="polling",
        collection=page.collection,
        record_count=len(page.records),
        landed_at=page.received_at,
    )
    raw_integrity.record_landed(conn, landed.location, landed.body, page.records)


def sync_incremental(
    client: HostPMSClient,
    store: ObjectStore,
    connect: Connect,
    property_id: str,
    collection: contract.Collection = "reservations",
    *,
    overlap: timedelta = INCREMENTAL_OVERLAP,
    progress: Progress | None = None,
) -> SyncResult:
    """Everything updated since the checkpoint, resuming mid-pagination after a crash.

    Without a checkpoint, everything since the property's history start (``hostpms connect
    --history-months``; none: everything HostPMS has)."""
    with connect() as conn:
        _refuse_disconnected(conn, property_id)
        checkpoint = checkpoints.get_checkpoint(conn, property_id, collection)
        history_from = properties.history_from(conn, property_id)
    stored_since = checkpoint.updated_since if checkpoint else None
    query_since = stored_since - overlap if stored_since else history_from
    result = SyncResult(property_id, collection, first_pass=stored_since is None)
    pages = client.iter_pages(
        property_id,
        collection,
        updated_since=query_since,
        cursor=checkpoint.cursor if checkpoint else None,
    )
    for page, landed in _land_each(store, pages, progress, LandingGuard(connect, source="polling")):
        result.add(page, landed.location if landed else None)
        last_page = page.next_cursor is None
        with connect() as conn, conn.transaction():
            _record_landed(conn, landed)
            # While paging, keep the pass's starting point and remember the cursor;
            # once the last page has landed, move the starting point to the newest record.
            new_since = _later(stored_since, result.watermark) if last_page else stored_since
            checkpoints.save_checkpoint(
                conn, property_id, collection, updated_since=new_since, cursor=page.next_cursor
            )
            if last_page and result.first_pass:
                history_passes.record_completed(conn, property_id, collection, history_from)
    return result


def sync_window(
    client: HostPMSClient,
    store: ObjectStore,
    connect: Connect,
    property_id: str,
    window_start: datetime,
    window_end: datetime,
    collection: contract.Collection = "reservations",
    *,
    progress: Progress | None = None,
) -> SyncResult:
    """Records updated in [start, end): backfills. Leaves the incremental checkpoint alone."""
    with connect() as conn:
        _refuse_disconnected(conn, property_id)
    result = SyncResult(property_id, collection)
    pages = client.iter_pages(
        property_id, collection, updated_since=window_start, updated_before=window_end
    )
    for page, landed in _land_each(store, pages, progress, LandingGuard(connect, source="polling")):
        result.add(page, landed.location if landed else None)
        with connect() as conn, conn.transaction():
            _record_landed(conn, landed)
    return result


def _refuse_disconnected(conn: psycopg.Connection, property_id: str) -> None:
    """No request is sent for a property disconnected with ``hostpms disconnect``."""
    if properties.is_disconnected(conn, property_id):
        raise ConfigurationError(
            f"{property_id} is disconnected; `hostpms connect` it again to sync it"
        )


def _land_each(
    store: ObjectStore,
    pages: Iterator[FetchedPage],
    progress: Progress | None,
    guard: LandingGuard,
) -> Iterator[tuple[FetchedPage, LandedFile | None]]:
    """Land every page that holds records; an empty last page only ends the pass.

    Records of erased persons (the GDPR suppression list) are redacted before the page lands.
    A stop asked of the process abandons the page just fetched (its checkpoint unmoved).
    """
    for page in pages:
        stopping.check()
        landed_file = None
        if page.records:
            with guard.landing() as landing:
                spec = BY_COLLECTION[page.collection]
                records = landing.redact(spec, page.records, page.property_id)
                landed = (
                    page if records is page.records else dataclasses.replace(page, records=records)
                )
                landed_file = land_page(store, landed)
        if progress:
            progress(page)
        yield page, landed_file


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    candidates = [moment for moment in (a, b) if moment is not None]
    return max(candidates) if candidates else None


def reset_for_full_resync(
    connect: Connect, property_id: str, collection: contract.Collection = "reservations"
) -> bool:
    """Forget the property's checkpoint, so its next incremental sync re-reads its whole history.

    What is re-read lands as new raw files; dedup and the upsert absorb the repeats
    (same state, same version). True if there was a checkpoint to forget.
    """
    with connect() as conn, conn.transaction():
        forgot = checkpoints.reset_checkpoint(conn, property_id, collection)
    log.info("%s/%s: checkpoint reset; the next sync reads everything", property_id, collection)
    return forgot

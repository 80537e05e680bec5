"""Polling: fetch pages from HostPMS and land each one, durably, in the raw store.

A page is written to ``{raw}/hostpms/{property_id}/polling/{timestamp}_{collection}.json``
before anything else happens; only then, in one PostgreSQL transaction, is it
recorded in the raw-file ledger and the property's checkpoint moved. A crash
between the two re-fetches that page on the next run; dedup absorbs the repeat.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
import psycopg

from hostpms_pipeline import stopping
from hostpms_pipeline.entities import BY_COLLECTION
from hostpms_pipeline.entities.row_ids import SOURCE, row_ids_hex
from hostpms_pipeline.errors import ConfigurationError
from hostpms_pipeline.gdpr.redaction import Landing, LandingGuard
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import FetchedPage, HostPMSClient
from hostpms_pipeline.lake import raw_integrity
from hostpms_pipeline.lake.raw_layout import polling_key
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.warehouse import (
    checkpoints,
    history_passes,
    ledger,
    properties,
    stored_states,
)

log = logging.getLogger(__name__)

# Incremental syncs re-read this much before the checkpoint: clock skew and late
# commits on HostPMS's side; the repeats are absorbed by dedup.
INCREMENTAL_OVERLAP = timedelta(minutes=5)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
Progress = Callable[[FetchedPage], None]


# Pages land (each file fsynced) as they come; their ledger rows and the checkpoint are
# committed together every this many pages or seconds, whichever comes first. A crash
# re-fetches the pages since the last commit; dedup absorbs them.
COMMIT_PAGES = 32
COMMIT_SECONDS = 1.0
# Pages fetched while earlier ones land: the HTTP round trip overlaps the disk and the database.
FETCH_AHEAD_PAGES = 8
# Files written at once: each waits for its fsyncs, which the disk serves together.
LAND_THREADS = 4

Committed = Callable[[list[str]], None]
AlreadyStored = Callable[[psycopg.Connection, FetchedPage], bool]


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
        self.records += page.record_count
        if location:
            self.locations.append(location)
        if page.max_updated_at and (self.watermark is None or page.max_updated_at > self.watermark):
            self.watermark = page.max_updated_at


def serialize_page(page: FetchedPage) -> bytes:
    """The landed file: the page's context, then its records as HostPMS sent them (not re-encoded)."""
    head = orjson.dumps(
        {
            "kind": "polling",
            "source": SOURCE,
            "property_id": page.property_id,
            "collection": page.collection,
            "received_at": contract.format_timestamp(page.received_at),
            "request": page.request_params,
            "next_cursor": page.next_cursor,
        }
    )
    return b"".join((head[:-1], b',"data":', page.data, b"}"))


@dataclass(frozen=True)
class LandedFile:
    """A page as it was stored: where, its digest, and the page (redacted records included)."""

    location: str
    digest: raw_integrity.LandedDigest
    page: FetchedPage


def land_page(store: ObjectStore, page: FetchedPage) -> LandedFile:
    key = polling_key(page.property_id, page.collection, page.received_at)
    body = serialize_page(page)
    location = store.put(key, body)
    return LandedFile(
        location, raw_integrity.LandedDigest.of(location, body, page.updated_at_range), page
    )


def _record_landed(conn: psycopg.Connection, files: list[LandedFile]) -> None:
    """The files in the ledger with their digests (in the caller's transaction)."""
    ledger.record_landed_files(
        conn,
        [
            ledger.LandedRow(
                file.location,
                file.page.property_id,
                "polling",
                file.page.collection,
                file.page.record_count,
                file.page.received_at,
            )
            for file in files
        ],
    )
    raw_integrity.record_landed(conn, (file.digest for file in files))


def sync_incremental(
    client: HostPMSClient,
    store: ObjectStore,
    connect: Connect,
    property_id: str,
    collection: contract.Collection = "reservations",
    *,
    overlap: timedelta = INCREMENTAL_OVERLAP,
    progress: Progress | None = None,
    committed: Committed | None = None,
    commit_pages: int = COMMIT_PAGES,
) -> SyncResult:
    """Everything updated since the checkpoint, resuming mid-pagination after a crash.

    ``committed`` is told the locations of each group of files once they are in the
    ledger (a loader may start on them while later pages still arrive).

    Without a checkpoint, everything since the property's history start (``hostpms connect
    --history-months``; none: everything HostPMS has).
    """
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

    def checkpoint_for(conn: psycopg.Connection, last: FetchedPage) -> None:
        # While paging, keep the pass's starting point and remember the cursor;
        # once the last page has landed, move the starting point to the newest record.
        done = last.next_cursor is None
        new_since = _later(stored_since, result.watermark) if done else stored_since
        checkpoints.save_checkpoint(
            conn, property_id, collection, updated_since=new_since, cursor=last.next_cursor
        )
        if done and result.first_pass:
            history_passes.record_completed(conn, property_id, collection, history_from)

    _land_in_groups(
        store,
        connect,
        pages,
        result,
        checkpoint_for,
        progress,
        committed,
        commit_pages,
        _already_stored(stored_since),
    )
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
    committed: Committed | None = None,
) -> SyncResult:
    """Records updated in [start, end): backfills. Leaves the incremental checkpoint alone."""
    with connect() as conn:
        _refuse_disconnected(conn, property_id)
    result = SyncResult(property_id, collection)
    pages = client.iter_pages(
        property_id, collection, updated_since=window_start, updated_before=window_end
    )
    _land_in_groups(store, connect, pages, result, None, progress, committed, COMMIT_PAGES, None)
    return result


def _refuse_disconnected(conn: psycopg.Connection, property_id: str) -> None:
    """No request is sent for a property disconnected with ``hostpms disconnect``."""
    if properties.is_disconnected(conn, property_id):
        raise ConfigurationError(
            f"{property_id} is disconnected; `hostpms connect` it again to sync it"
        )


def _land_in_groups(
    store: ObjectStore,
    connect: Connect,
    pages: Iterator[FetchedPage],
    result: SyncResult,
    checkpoint_for: Callable[[psycopg.Connection, FetchedPage], None] | None,
    progress: Progress | None,
    committed: Committed | None,
    commit_pages: int,
    already_stored: AlreadyStored | None,
) -> None:
    """Land every page (fetched ahead), committing ledger and checkpoint a group at a time.

    Records of erased persons (the GDPR suppression list) are redacted before a page
    lands. A stop asked of the process abandons the pages since the last commit
    (landed, not recorded: they are fetched again).
    """
    guard = LandingGuard(connect, source="polling")
    ahead = _fetched_ahead(pages, FETCH_AHEAD_PAGES)
    writers = ThreadPoolExecutor(LAND_THREADS, thread_name_prefix="hostpms-land")
    try:
        with connect() as conn:
            last: FetchedPage | None = None
            while last is None or last.next_cursor is not None:
                # Each page's file is written (and fsynced) by a writer thread while the
                # next page is taken; the group's ledger rows wait for all of them.
                group: list[tuple[FetchedPage, Future[LandedFile] | None]] = []
                opened = time.monotonic()
                failure: BaseException | None = None
                with guard.landing(conn) as landing:
                    while True:
                        try:
                            page = next(ahead)
                        except StopIteration:
                            break
                        except Exception as error:  # noqa: BLE001 - what landed is recorded first
                            failure = error
                            break
                        stopping.check()
                        skip = already_stored is not None and already_stored(conn, page)
                        writing = None if skip else _land(writers, store, landing, page)
                        group.append((page, writing))
                        if progress:
                            progress(page)  # as its file is being written
                        last = page
                        if any(w and w.done() and w.exception() for _, w in group):
                            break  # a write failed (raised below): no more pages
                        if page.next_cursor is None or len(group) >= commit_pages:
                            break
                        if time.monotonic() - opened >= COMMIT_SECONDS:
                            break
                    landed = _landed(group, result)
                if last is not None:
                    with conn.transaction():
                        _record_landed(conn, landed)
                        if checkpoint_for is not None:
                            checkpoint_for(conn, last)
                if committed and landed:
                    committed([file.location for file in landed])
                if failure is not None:
                    raise failure
                if last is None:
                    return
    finally:
        ahead.close()
        writers.shutdown()  # a failed group's other files finish (unrecorded: fetched again)


def _landed(
    group: list[tuple[FetchedPage, Future[LandedFile] | None]], result: SyncResult
) -> list[LandedFile]:
    """The group's files once every one is durable, in the order their pages came."""
    files = []
    for page, writing in group:
        file = writing.result() if writing is not None else None
        result.add(page, file.location if file else None)
        if file:
            files.append(file)
    return files


def _land(
    writers: ThreadPoolExecutor, store: ObjectStore, landing: Landing, page: FetchedPage
) -> Future[LandedFile] | None:
    """The page landing by a writer (its records redacted here where they name an erased
    person); an empty page only ends the pass."""
    if not page.record_count:
        return None
    spec = BY_COLLECTION[page.collection]
    if landing.needs_redaction(spec):
        records = landing.redact(spec, page.records, page.property_id)
        page = page if records is page.records else page.with_records(records)
    return writers.submit(land_page, store, page)


def _fetched_ahead(pages: Iterator[FetchedPage], depth: int) -> Generator[FetchedPage, None, None]:
    """``pages``, fetched in a thread up to ``depth`` pages ahead of the consumer.

    An error while fetching is raised to the consumer at the page it would have been;
    closing the generator stops the fetching.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    closed = threading.Event()
    end = object()

    def fetch() -> None:
        try:
            for page in pages:
                if not _offer(handoff, page, closed):
                    return
            _offer(handoff, end, closed)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            _offer(handoff, error, closed)

    fetcher = threading.Thread(target=fetch, name="hostpms-fetch", daemon=True)
    fetcher.start()
    try:
        while True:
            item = handoff.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
        fetcher.join()


def _offer(handoff: queue.Queue, item: object, closed: threading.Event) -> bool:
    while not closed.is_set():
        try:
            handoff.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _already_stored(stored_since: datetime | None) -> AlreadyStored:
    """A page of records all at or before the previous pass's newest, each already
    stored in that state or a newer one: the incremental overlap re-reading what
    landed before. Landing it again would add nothing (an idle sync lands no file)."""

    def check(conn: psycopg.Connection, page: FetchedPage) -> bool:
        if stored_since is None or page.updated_at_range is None:
            return False
        if contract.parse_timestamp(page.updated_at_range[1]) > stored_since:
            return False
        spec = BY_COLLECTION[page.collection]
        keys = contract.record_keys(page.data, spec.id_field)
        if not keys:
            return False
        external_ids, stamps = zip(*keys, strict=True)
        ids = row_ids_hex(spec, page.property_id, external_ids)
        # A transaction of its own (the group's commit later is never a savepoint), opened
        # only here: a round trip per page on a first load cost seconds on a busy machine.
        try:
            with conn.transaction():
                return stored_states.holds_states(conn, spec, ids, stamps)
        except psycopg.DataError:  # a stamp PostgreSQL does not read: landing it is harmless
            return False

    return check


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

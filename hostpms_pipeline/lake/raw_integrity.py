"""A damaged raw file is named and set aside, never a wall.

When a polling page lands, its size and SHA-256 go to the ledger (``raw_file_digests``)
with the ``updated_at`` span of its records. When pending files are read, each one is
checked: a file that is missing, whose size or digest differs from what landed, or
(without a digest, and only if reading the batch fails) that cannot be read on its own
is **quarantined**: recorded in
``raw_quarantine`` with its location and reason, and marked processed so the files
after it go on. The ``raw_files_intact`` check reports open entries, and
``hostpms refetch PROPERTY_ID`` fetches each entry's window again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import orjson
import psycopg

from hostpms_pipeline.lake.storage import ObjectNotFoundError, ObjectStore

log = logging.getLogger(__name__)
T = TypeVar("T")

READ_THREADS = 8  # object-store reads are I/O bound (S3 round trips)
# The window fetched again ends just after the page's newest record (the API's end is exclusive).
WINDOW_END_PAST_NEWEST = timedelta(microseconds=1)


@dataclass(frozen=True)
class Quarantined:
    location: str
    property_id: str
    collection: str
    reason: str
    window_start: datetime | None
    window_end: datetime | None
    quarantined_at: datetime


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class LandedDigest:
    """What a landed file must look like when read, and the ``updated_at`` span of its records."""

    location: str
    size_bytes: int
    sha256: str
    updated_at: tuple[str, str] | None

    @classmethod
    def of(cls, location: str, body: bytes, updated_at: tuple[str, str] | None) -> LandedDigest:
        # hashlib lets go of the GIL while it hashes: pages landing in threads hash in parallel.
        return cls(location, len(body), digest(body), updated_at)


def record_landed(conn: psycopg.Connection, digests: Iterable[LandedDigest]) -> None:
    """Keep the digests of landed files (call in the landing's transaction; one round trip)."""
    rows = [(d.location, d.size_bytes, d.sha256, *(d.updated_at or (None, None))) for d in digests]
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO raw_file_digests"
            " (location, size_bytes, sha256, min_updated_at, max_updated_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (location) DO NOTHING",
            rows,
        )


def record_rewritten(conn: psycopg.Connection, files: dict[str, bytes]) -> None:
    """New size and digest for files rewritten on purpose (a GDPR erasure's redacted copies),
    so reading them is not taken for damage. Files landed without a digest keep none."""
    for location, body in files.items():
        conn.execute(
            "UPDATE raw_file_digests SET size_bytes = %s, sha256 = %s WHERE location = %s",
            (len(body), digest(body), location),
        )


def read_checked(
    store: ObjectStore,
    conn: psycopg.Connection,
    locations: list[str],
    parse: Callable[[Iterable[tuple[str, bytes]]], T],
) -> tuple[list[str], T]:
    """``parse`` (the transform's reader) over the files at ``locations`` that are intact,
    and their locations; every other file is quarantined (committed at once) and logged.

    Files with a digest are checked against it before parsing. Files without one cost
    nothing more unless ``parse`` fails: then each is parsed on its own, the ones that
    fail are set aside, and the rest is parsed again.
    """
    if not locations:
        return [], parse([])
    expected = {
        location: (size, sha256, start, end)
        for location, size, sha256, start, end in conn.execute(
            "SELECT location, size_bytes, sha256, min_updated_at, max_updated_at"
            " FROM raw_file_digests WHERE location = ANY(%s)",
            (locations,),
        )
    }
    with ThreadPoolExecutor(READ_THREADS) as pool:
        read = list(pool.map(_reader(store, expected), locations))
    files: list[tuple[str, bytes]] = []
    damaged: list[tuple[str, str]] = []
    for location, (body, sha256) in zip(locations, read, strict=True):
        reason = _damage(body, sha256, expected.get(location))
        if reason is None:
            files.append((location, body))  # type: ignore[arg-type]
        else:
            damaged.append((location, reason))
    try:
        parsed = parse(files)
    except Exception:
        unreadable = [
            (location, reason)
            for location, body in files
            if (reason := _unparseable(location, body, parse)) is not None
        ]
        if not unreadable:
            raise  # no one file is to blame: the failure is not the files'
        damaged += unreadable
        bad = {location for location, _ in unreadable}
        files = [(location, body) for location, body in files if location not in bad]
        parsed = parse(files)
    if damaged:
        quarantine(conn, damaged, expected)
    return [location for location, _ in files], parsed


def _unparseable(location: str, body: bytes, parse: Callable) -> str | None:
    """Why this one file cannot be read on its own; None if it can."""
    try:
        page = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return f"not JSON ({str(error).split(':')[0]})"
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        return "not a HostPMS page (no data list)"
    try:
        parse([(location, body)])
    except Exception as error:  # noqa: BLE001 - the reason is named, the file set aside
        return f"cannot be read ({type(error).__name__})"
    return None


def _reader(
    store: ObjectStore, expected: dict[str, tuple]
) -> Callable[[str], tuple[bytes | None, str | None]]:
    """A file's bytes and, if it has a landed digest, theirs: hashed in the reading threads
    (hashlib lets go of the GIL), not one file after the other by the caller."""

    def read(location: str) -> tuple[bytes | None, str | None]:
        try:
            body = store.get_location(location)
        except ObjectNotFoundError:
            return None, None  # other storage errors are the store's, not the file's
        return body, digest(body) if location in expected else None

    return read


def _damage(body: bytes | None, sha256: str | None, expected: tuple | None) -> str | None:
    """Why the file is not as it landed; None when it is (or nothing is known of it)."""
    if body is None:
        return "missing from the raw store"
    if expected is not None:
        size, landed_sha256 = expected[0], expected[1]
        if len(body) != size:
            return f"size {len(body)} bytes, {size} when landed"
        if sha256 != landed_sha256:
            return "content differs from what landed (SHA-256)"
    return None


def quarantine(
    conn: psycopg.Connection, damaged: list[tuple[str, str]], expected: dict | None = None
) -> None:
    """Set these files aside with their reasons; committed at once, so they stay aside."""
    expected = expected or {}
    rows = []
    for location, reason in damaged:
        known = expected.get(location)
        start = known[2] if known else None
        end = known[3] + WINDOW_END_PAST_NEWEST if known and known[3] else None
        rows.append((location, reason, start, end))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO raw_quarantine (location, property_id, reason, window_start, window_end)"
            " SELECT %s, property_id, %s, %s, %s FROM raw_files WHERE location = %s"
            " ON CONFLICT (location) DO UPDATE SET reason = EXCLUDED.reason,"
            " quarantined_at = now(), refetched_at = NULL",
            [(location, reason, start, end, location) for location, reason, start, end in rows],
        )
        cur.execute(
            "UPDATE raw_files SET processed_at = now() WHERE location = ANY(%s)",
            ([location for location, _ in damaged],),
        )
    conn.commit()
    for location, reason in damaged:
        log.warning("raw file set aside: %s (%s)", location, reason)


def open_entries(
    conn: psycopg.Connection, property_id: str | None = None, collection: str | None = None
) -> list[Quarantined]:
    """Files set aside and not yet fetched again (of a property, of a collection), oldest first."""
    rows = conn.execute(
        "SELECT q.location, q.property_id, f.collection, q.reason, q.window_start,"
        " q.window_end, q.quarantined_at"
        " FROM raw_quarantine AS q JOIN raw_files AS f USING (location)"
        " WHERE q.refetched_at IS NULL"
        " AND (%(p)s::text IS NULL OR q.property_id = %(p)s)"
        " AND (%(c)s::text IS NULL OR f.collection = %(c)s)"
        " ORDER BY q.quarantined_at, q.location",
        {"p": property_id, "c": collection},
    ).fetchall()
    return [Quarantined(*row) for row in rows]


def mark_refetched(conn: psycopg.Connection, locations: list[str]) -> None:
    conn.execute(
        "UPDATE raw_quarantine SET refetched_at = now() WHERE location = ANY(%s)", (locations,)
    )
    conn.commit()


def set_aside_line(entry: Quarantined) -> str:
    """What an operator reads about a file set aside, and what to do about it."""
    return (
        f"{entry.property_id}: raw file {entry.location} set aside ({entry.reason}); "
        f"fetch its window again with `{refetch_command(entry.property_id)}`"
    )


def refetch_command(property_id: str) -> str:
    return f"hostpms refetch {property_id}"

"""The raw-file ledger: every landed raw file, so the ETL reads only what is new.

None of these functions commits: landing records a file in the same transaction
that moves its checkpoint, and a load marks its files processed in the same
transaction that writes their rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal, NamedTuple

import psycopg

RawFileKind = Literal["polling", "webhook"]


_RECORD_LANDED = (
    "INSERT INTO raw_files (location, property_id, kind, collection, record_count, landed_at)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (location) DO NOTHING"
)


class LandedRow(NamedTuple):
    location: str
    property_id: str
    kind: RawFileKind
    collection: str
    record_count: int
    landed_at: datetime


def record_landed_file(
    conn: psycopg.Connection,
    location: str,
    property_id: str,
    kind: RawFileKind,
    collection: str,
    record_count: int,
    landed_at: datetime,
) -> bool:
    """Add a durably stored raw file to the ledger; False if it was already there."""
    row = LandedRow(location, property_id, kind, collection, record_count, landed_at)
    return conn.execute(_RECORD_LANDED, row).rowcount > 0


def record_landed_files(conn: psycopg.Connection, rows: list[LandedRow]) -> None:
    """Many files at once, in one round trip; one already there is left alone."""
    with conn.cursor() as cursor:
        cursor.executemany(_RECORD_LANDED, rows)


def pending_files(
    conn: psycopg.Connection,
    property_id: str | None = None,
    kind: RawFileKind | None = None,
    collection: str | None = None,
) -> list[str]:
    """Locations landed but not yet processed, oldest first."""
    return [location for location, _ in _pending(conn, property_id, kind, collection)]


def pending_within_budget(
    conn: psycopg.Connection,
    max_records: int | None,
    property_id: str | None = None,
    collection: str | None = None,
) -> tuple[list[str], int]:
    """The oldest pending files holding about ``max_records`` records (always at least
    one file; every file without a budget), and how many pending files are left after them."""
    pending = _pending(conn, property_id, None, collection)
    taken = records = 0
    for _, count in pending:
        if max_records is not None and taken and records + count > max_records:
            break
        taken += 1
        records += count
    return [location for location, _ in pending[:taken]], len(pending) - taken


def _pending(
    conn: psycopg.Connection,
    property_id: str | None,
    kind: RawFileKind | None,
    collection: str | None,
) -> list[tuple[str, int]]:
    return conn.execute(
        "SELECT location, record_count FROM raw_files WHERE processed_at IS NULL"
        " AND (%(property_id)s::text IS NULL OR property_id = %(property_id)s)"
        " AND (%(kind)s::text IS NULL OR kind = %(kind)s)"
        " AND (%(collection)s::text IS NULL OR collection = %(collection)s)"
        " ORDER BY landed_at, location",
        {"property_id": property_id, "kind": kind, "collection": collection},
    ).fetchall()


def recorded_locations(conn: psycopg.Connection, locations: list[str]) -> set[str]:
    """Which of these locations the ledger already holds."""
    rows = conn.execute("SELECT location FROM raw_files WHERE location = ANY(%s)", (locations,))
    return {location for (location,) in rows}


def latest_landing(
    conn: psycopg.Connection, property_id: str, kind: RawFileKind, collection: str | None = None
) -> datetime | None:
    """When the newest file of this kind (and collection) for the property landed (None if none has)."""
    row = conn.execute(
        "SELECT max(landed_at) FROM raw_files WHERE property_id = %s AND kind = %s"
        " AND (%s::text IS NULL OR collection = %s)",
        (property_id, kind, collection, collection),
    ).fetchone()
    return row[0] if row else None


def mark_processed(conn: psycopg.Connection, locations: Iterable[str]) -> int:
    """Mark files processed (already processed ones keep their first time); returns how many changed."""
    return conn.execute(
        "UPDATE raw_files SET processed_at = now() WHERE location = ANY(%s) AND processed_at IS NULL",
        (list(locations),),
    ).rowcount

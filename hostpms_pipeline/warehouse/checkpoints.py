"""Sync checkpoints (where each property's incremental sync resumes) and the raw-file ledger.

None of these functions commits: they run in whatever transaction the caller has
open, so landing can record a file and move the checkpoint atomically.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

import psycopg
from psycopg.rows import class_row

from hostpms_pipeline.engine.booking_schema import DayPartition, day_partition
from hostpms_pipeline.warehouse.database import advisory_key

RawFileKind = Literal["polling", "webhook"]


@dataclass(frozen=True)
class Checkpoint:
    property_id: str
    collection: str
    updated_since: datetime | None  # None until a first pass has completed
    cursor: str | None  # set while a pagination pass is under way
    updated_at: datetime


def get_checkpoint(
    conn: psycopg.Connection, property_id: str, collection: str
) -> Checkpoint | None:
    with conn.cursor(row_factory=class_row(Checkpoint)) as cur:
        return cur.execute(
            "SELECT property_id, collection, updated_since, cursor, updated_at"
            " FROM sync_checkpoints WHERE property_id = %s AND collection = %s",
            (property_id, collection),
        ).fetchone()


def save_checkpoint(
    conn: psycopg.Connection,
    property_id: str,
    collection: str,
    updated_since: datetime | None,
    cursor: str | None,
) -> Checkpoint:
    """Store the cursor as given; ``updated_since`` only ever moves forward (see ``reset_checkpoint``)."""
    with conn.cursor(row_factory=class_row(Checkpoint)) as cur:
        saved = cur.execute(
            """
            INSERT INTO sync_checkpoints AS c (property_id, collection, updated_since, cursor)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (property_id, collection) DO UPDATE SET
                updated_since = GREATEST(c.updated_since, EXCLUDED.updated_since),
                cursor = EXCLUDED.cursor,
                updated_at = now()
            RETURNING property_id, collection, updated_since, cursor, updated_at
            """,
            (property_id, collection, updated_since, cursor),
        ).fetchone()
    assert saved is not None
    return saved


def reset_checkpoint(conn: psycopg.Connection, property_id: str, collection: str) -> bool:
    """Forget the checkpoint (full resync starts from the beginning); True if there was one."""
    return (
        conn.execute(
            "DELETE FROM sync_checkpoints WHERE property_id = %s AND collection = %s",
            (property_id, collection),
        ).rowcount
        > 0
    )


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
    return (
        conn.execute(
            "INSERT INTO raw_files (location, property_id, kind, collection, record_count, landed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (location) DO NOTHING",
            (location, property_id, kind, collection, record_count, landed_at),
        ).rowcount
        > 0
    )


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
    conn: psycopg.Connection, property_id: str, kind: RawFileKind
) -> datetime | None:
    """When the newest file of this kind for the property landed (None if none has)."""
    row = conn.execute(
        "SELECT max(landed_at) FROM raw_files WHERE property_id = %s AND kind = %s",
        (property_id, kind),
    ).fetchone()
    return row[0] if row else None


def mark_processed(conn: psycopg.Connection, locations: Iterable[str]) -> int:
    """Mark files processed (already processed ones keep their first time); returns how many changed."""
    return conn.execute(
        "UPDATE raw_files SET processed_at = now() WHERE location = ANY(%s) AND processed_at IS NULL",
        (list(locations),),
    ).rowcount


def last_sync_times(conn: psycopg.Connection, collection: str) -> dict[str, datetime]:
    """When each property's checkpoint for ``collection`` last moved (its last landed page)."""
    rows = conn.execute(
        "SELECT property_id, max(updated_at) FROM sync_checkpoints WHERE collection = %s GROUP BY property_id",
        (collection,),
    )
    return {property_id: moment for property_id, moment in rows}


def enqueue_parquet_partitions(
    conn: psycopg.Connection, partitions: Iterable[DayPartition], queued_by: str | None = None
) -> None:
    """Queue booked_at days for a Parquet rewrite (call inside the upsert's transaction).

    ``queued_by`` names a run that keeps the rows it wrote (a ``ParquetDelta``), so
    its export may merge them instead of reading the days back from PostgreSQL.
    """
    days = [date(*partition) if partition else None for partition in partitions]
    if days:
        conn.execute(
            "INSERT INTO parquet_outbox (day, queued_by) SELECT unnest(%s::date[]), %s"
            " ON CONFLICT DO NOTHING",
            (days, queued_by),
        )


def take_parquet_partitions(conn: psycopg.Connection) -> dict[DayPartition, set[str | None]]:
    """Claim every queued day, with who queued it (call inside the export's transaction;
    rolled back if it fails).

    Exports serialise on an advisory lock, so one never overwrites a newer one's files.
    """
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("parquet", "export"),))
    taken: dict[DayPartition, set[str | None]] = {}
    for day, queued_by in conn.execute("DELETE FROM parquet_outbox RETURNING day, queued_by"):
        taken.setdefault(day_partition(day), set()).add(queued_by)
    return taken

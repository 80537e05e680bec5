"""Sync checkpoints: where each property's incremental sync of each collection resumes.

None of these functions commits: they run in whatever transaction the caller has
open, so landing can record a file and move the checkpoint atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row


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


def last_sync_times(conn: psycopg.Connection, collection: str) -> dict[str, datetime]:
    """When each property's checkpoint for ``collection`` last moved (its last landed page)."""
    rows = conn.execute(
        "SELECT property_id, max(updated_at) FROM sync_checkpoints WHERE collection = %s GROUP BY property_id",
        (collection,),
    )
    return {property_id: moment for property_id, moment in rows}

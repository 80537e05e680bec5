"""First passes: a collection of a property read, from nothing, everything updated since a
moment (null: everything HostPMS has). Once loaded, the month partitions such a pass
covered are reported materialized (``defs/coverage.py``). None of these functions commits.
"""

from __future__ import annotations

from datetime import datetime

import psycopg


def record_completed(
    conn: psycopg.Connection, property_id: str, collection: str, read_from: datetime | None
) -> None:
    """A first pass just landed its last page. A pass from the same start as one already
    recorded (a resync, a property with no records yet) covers no new month."""
    conn.execute(
        """
        INSERT INTO history_passes (property_id, collection, read_from)
        VALUES (%s, %s, %s)
        ON CONFLICT (property_id, collection) DO UPDATE SET
            read_from = EXCLUDED.read_from, completed_at = now(), reported_at = NULL
        WHERE history_passes.read_from IS DISTINCT FROM EXCLUDED.read_from
        """,
        (property_id, collection, read_from),
    )


def unreported(
    conn: psycopg.Connection, property_id: str, collection: str
) -> tuple[datetime | None] | None:
    """``(read_from,)`` of a completed pass whose months are not yet reported, else None."""
    row = conn.execute(
        "SELECT read_from FROM history_passes WHERE property_id = %s AND collection = %s"
        " AND reported_at IS NULL",
        (property_id, collection),
    ).fetchone()
    return (row[0],) if row else None


def mark_reported(conn: psycopg.Connection, property_id: str, collection: str) -> None:
    conn.execute(
        "UPDATE history_passes SET reported_at = now() WHERE property_id = %s AND collection = %s",
        (property_id, collection),
    )


def forget(conn: psycopg.Connection, property_id: str) -> int:
    return conn.execute(
        "DELETE FROM history_passes WHERE property_id = %s", (property_id,)
    ).rowcount

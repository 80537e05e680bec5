"""Each ``hostpms sync`` of a property (``sync_reports``): what it loaded, or why it failed.

The sync writes a row per property; the ``hostpms_cli_syncs`` sensor reads the rows after
its cursor (``defs/cli_syncs.py``) and ``hostpms status`` counts the failures. None of
these functions commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class SyncReport:
    id: int
    property_id: str
    finished_at: datetime
    succeeded: bool
    problem: str | None
    # collection → records_landed, rows_mapped, rejected, inserted, versions_bumped
    loaded: dict[str, dict[str, int]] = field(default_factory=dict)


def record(
    conn: psycopg.Connection,
    property_id: str,
    *,
    problem: str | None = None,
    loaded: Mapping[str, Mapping[str, int]] | None = None,
) -> None:
    """A sync of the property: failed with ``problem`` (its one line), else succeeded having
    loaded ``loaded`` (the collections that loaded files)."""
    conn.execute(
        "INSERT INTO sync_reports (property_id, succeeded, problem, loaded) VALUES (%s, %s, %s, %s)",
        (property_id, problem is None, problem, Jsonb(dict(loaded or {}))),
    )


def after(conn: psycopg.Connection, report_id: int, limit: int) -> list[SyncReport]:
    """The reports written after ``report_id``, oldest first."""
    with conn.cursor(row_factory=class_row(SyncReport)) as cursor:
        return cursor.execute(
            "SELECT id, property_id, finished_at, succeeded, problem, loaded FROM sync_reports"
            " WHERE id > %s ORDER BY id LIMIT %s",
            (report_id, limit),
        ).fetchall()


def outcomes(
    conn: psycopg.Connection, property_id: str, limit: int, until: datetime | None = None
) -> list[tuple[datetime, bool]]:
    """``(finished_at, succeeded)`` of the property's latest syncs (finished by ``until``),
    newest first."""
    rows = conn.execute(
        "SELECT finished_at, succeeded FROM sync_reports WHERE property_id = %s"
        " AND finished_at <= coalesce(%s::timestamptz, 'infinity') ORDER BY finished_at DESC"
        " LIMIT %s",
        (property_id, until, limit),
    )
    return [(finished_at, succeeded) for finished_at, succeeded in rows]


def forget_reported(conn: psycopg.Connection, up_to_id: int, kept_days: int) -> None:
    """Reports up to ``up_to_id`` (already shown) older than ``kept_days`` are deleted."""
    conn.execute(
        "DELETE FROM sync_reports WHERE id <= %s"
        " AND finished_at < now() - make_interval(days => %s)",
        (up_to_id, kept_days),
    )

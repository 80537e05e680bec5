"""The Parquet outbox: day partitions of each dataset whose rows changed in PostgreSQL.

A load queues the days it touched in the same transaction as its upsert; an
export takes them in the transaction that rewrites them, so a failed export is
retried by the next one instead of leaving the dataset behind PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TYPE_CHECKING

import psycopg

from hostpms_pipeline.warehouse.database import advisory_key

if TYPE_CHECKING:
    from hostpms_pipeline.entities.schema import DayPartition


def enqueue(
    conn: psycopg.Connection,
    dataset: str,
    partitions: Iterable[DayPartition],
    queued_by: str | None = None,
) -> None:
    """Queue days of ``dataset`` for a Parquet rewrite (call inside the upsert's transaction).

    ``queued_by`` names a run that keeps the rows it wrote (a ``ParquetDelta``), so
    its export may merge them instead of reading the days back from PostgreSQL.
    """
    days = [date(*partition) if partition else None for partition in partitions]
    if days:
        conn.execute(
            "INSERT INTO parquet_outbox (dataset, day, queued_by)"
            " SELECT %s, unnest(%s::date[]), %s ON CONFLICT DO NOTHING",
            (dataset, days, queued_by),
        )


def waiting(conn: psycopg.Connection, dataset: str) -> bool:
    """Whether any day of ``dataset`` waits for its export."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM parquet_outbox WHERE dataset = %s)", (dataset,)
    ).fetchone()
    return bool(row and row[0])


def take(conn: psycopg.Connection, dataset: str) -> dict[DayPartition, set[str | None]]:
    """Claim every queued day of ``dataset``, with who queued it (call inside the export's
    transaction; rolled back if it fails).

    Exports of a dataset serialise on an advisory lock, so one never overwrites a
    newer one's files.
    """
    # Here: the schema module loads Arrow, which a sync with nothing to export never needs.
    from hostpms_pipeline.entities.schema import day_partition

    conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("parquet", dataset),))
    taken: dict[DayPartition, set[str | None]] = {}
    rows = conn.execute(
        "DELETE FROM parquet_outbox WHERE dataset = %s RETURNING day, queued_by", (dataset,)
    )
    for day, queued_by in rows:
        taken.setdefault(day_partition(day), set()).add(queued_by)
    return taken

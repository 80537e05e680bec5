"""Partition status that matches what is loaded.

The live partition's first pass of a property reads its whole history (or everything
since ``hostpms connect --history-months``), so once that pass is loaded every month it
covered is in PostgreSQL and Parquet although only the live month's run materialized.
This reports those months materialized too, for every asset of the entity's chain, so
the UI's partitions page does not show two years as still to backfill.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from dagster import AssetMaterialization, DagsterInstance

from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import month_key, month_partitions, property_month_key
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import history_passes, ledger


def covered_months(settings: Settings, read_from: datetime | None, now: datetime) -> list[str]:
    """Month keys from the pass's start (the history start if none) up to the live month, excluded."""
    first = month_key(read_from) if read_from else None
    live = month_key(now)
    keys = month_partitions(settings).get_partition_keys(current_time=now)
    return [key for key in keys if (first is None or key >= first) and key < live]


def history_materializations(
    conn: psycopg.Connection,
    instance: DagsterInstance,
    settings: Settings,
    spec: EntitySpec,
    property_id: str,
    now: datetime | None = None,
) -> list[AssetMaterialization]:
    """The months a loaded first pass covered, not yet materialized, for every asset of the chain.

    Nothing while some of the collection's raw files are still pending (the pass is not
    loaded yet); each pass is reported once.
    """
    with conn.transaction():
        due = history_passes.unreported(conn, property_id, spec.collection)
        pending = due is not None and ledger.pending_files(
            conn, property_id=property_id, collection=spec.collection
        )
    if due is None or pending:
        return []
    (read_from,) = due
    months = covered_months(settings, read_from, now or datetime.now(UTC))
    keys = entity_keys(spec)
    events = []
    for key in (keys.raw, keys.mapped, keys.deduplicated, keys.table, keys.parquet):
        done = instance.get_materialized_partitions(key)
        for month in months:
            partition = property_month_key(property_id, month)
            if str(partition) in done:
                continue
            events.append(
                AssetMaterialization(
                    asset_key=key,
                    partition=partition,
                    description="Loaded by the property's first pass of the live partition.",
                    metadata={
                        "covered_by": "first pass",
                        "read_from": read_from.isoformat() if read_from else "the beginning",
                    },
                )
            )
    with conn.transaction():
        history_passes.mark_reported(conn, property_id, spec.collection)
    return events

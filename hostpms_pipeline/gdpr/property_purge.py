"""Purging a disconnected property (``hostpms disconnect --purge``): every trace of its data,
in every store, with the erasure's safeguards, audited.

Order: in one PostgreSQL transaction, under the property's load locks, the erasure epoch
is bumped (a load that read its raw files before does not commit) and its rows, rejected
records, ledger, checkpoints and webhook keys are deleted, the Parquet days they lay in
queued; then its raw objects go (every version on S3); then the queued days are
rewritten; last, one row in the GDPR audit log. Running it again is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

from hostpms_pipeline import progress
from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.gdpr import audit, suppression
from hostpms_pipeline.gdpr.erasure import _queue_days
from hostpms_pipeline.gdpr.raw_store import delete_object
from hostpms_pipeline.lake.raw_layout import RAW_PREFIX
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.warehouse import entity_store, history_passes, properties

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
SCOPE = "purge"
# Tables keyed by property_id that hold nothing once the property's data is gone.
PROPERTY_TABLES = ("sync_checkpoints", "raw_quarantine", "webhook_events", "webhook_outcomes")


def purge_property(
    connect: Connect, raw_store: ObjectStore, processed_url: str, property_id: str, actor: str
) -> dict[str, int]:
    counts: dict[str, int] = {}
    with connect() as conn:
        with conn.transaction():
            suppression.bump_epoch(conn)
            for spec in ENTITIES:
                entity_store.lock_properties(conn, spec, [property_id])
                rows = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE hotel_id = %s RETURNING {}").format(
                        sql.Identifier(spec.table), sql.Identifier(spec.partition_column)
                    ),
                    (property_id,),
                ).fetchall()
                _queue_days(conn, spec, [moment for (moment,) in rows])
                counts[f"{spec.table}_deleted"] = len(rows)
                progress.advance(progress.Advance(SCOPE, "postgres", "rows deleted", len(rows)))
            counts["rejected_records_deleted"] = conn.execute(
                "DELETE FROM rejected_records WHERE hotel_id = %s", (property_id,)
            ).rowcount
            conn.execute(
                "DELETE FROM raw_file_digests WHERE location IN"
                " (SELECT location FROM raw_files WHERE property_id = %s)",
                (property_id,),
            )
            counts["ledger_rows_deleted"] = conn.execute(
                "DELETE FROM raw_files WHERE property_id = %s", (property_id,)
            ).rowcount
            for table in PROPERTY_TABLES:
                counts[f"{table}_deleted"] = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE property_id = %s").format(sql.Identifier(table)),
                    (property_id,),
                ).rowcount
            history_passes.forget(conn, property_id)

        keys = [info.key for info in raw_store.list(f"{RAW_PREFIX}/{property_id}/")]
        deleted = 0
        for key in keys:
            deleted += delete_object(raw_store, key)
            progress.advance(progress.Advance(SCOPE, "raw objects", "deleted", 1, total=len(keys)))
        counts["raw_objects_deleted"] = len(keys)
        counts["raw_object_versions_deleted"] = deleted

        partitions = 0
        for spec in ENTITIES:
            partitions += pipeline.export_parquet(conn, spec, processed_url).partitions
            progress.advance(progress.Advance(SCOPE, "parquet", "datasets rewritten", 1))
        counts["parquet_partitions_rewritten"] = partitions

        with conn.transaction():
            properties.mark_purged(conn, property_id)
            audit.record(
                conn,
                actor=actor,
                action="property_purge",
                person_hash=None,
                stores=["postgres", "raw", "parquet"],
                counts={"property_id": property_id, **counts},
            )
    return counts

"""Retention: raw objects and rejected records older than the retention (default 7 years,
``HOSTPMS_RETENTION_DAYS``) are deleted; what was deleted is reported and audited.

A raw object's age is its arrival time, read from its key (``lake/raw_layout.py``); on S3
every version of an expired object goes. (The S3 lifecycle rules that do the same on AWS
belong to the infrastructure.)
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import psycopg

from hostpms_pipeline.gdpr import audit
from hostpms_pipeline.gdpr.raw_store import delete_object
from hostpms_pipeline.lake.raw_layout import RAW_PREFIX, arrival_time
from hostpms_pipeline.lake.storage import ObjectStore

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def sweep(
    connect: Connect, raw_store: ObjectStore, retention: timedelta, now: datetime, actor: str
) -> dict[str, int]:
    cutoff = now - retention
    expired = []
    for info in raw_store.list(f"{RAW_PREFIX}/"):
        try:
            arrived = arrival_time(info.key)
        except ValueError:
            continue  # not a landed page or drop
        if arrived < cutoff:
            expired.append(info.key)
    deleted = sum(delete_object(raw_store, key) for key in expired)
    with connect() as conn, conn.transaction():
        locations = [raw_store.location(key) for key in expired]
        ledger = conn.execute(
            "DELETE FROM raw_files WHERE location = ANY(%s)", (locations,)
        ).rowcount
        rejected = conn.execute(
            "DELETE FROM rejected_records WHERE rejected_at < %s", (cutoff,)
        ).rowcount
        counts = {
            "raw_objects_deleted": len(expired),
            "raw_object_versions_deleted": deleted,
            "ledger_rows_deleted": ledger,
            "rejected_records_deleted": rejected,
            "retention_days": retention.days,
        }
        audit.record(
            conn, actor=actor, action="retention", person_hash=None, stores=["raw", "postgres"],
            counts=counts,
        )  # fmt: skip
    return counts

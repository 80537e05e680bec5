"""Partitions: one HostPMS property × one month of record updates.

An operator backfills one property, or a range of months of one property, from
the UI (two years of history is 24 runs). The month that contains "now" is the
live partition: the hourly schedule materialises it incrementally from the
property's checkpoint; older months fetch exactly their window of ``updated_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from dagster import (
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from hostpms_pipeline.settings import get_settings

PROPERTY_DIMENSION = "property"
MONTH_DIMENSION = "month"
PARTITION_TIMEZONE = "Europe/Lisbon"

month_partitions = MonthlyPartitionsDefinition(
    start_date=get_settings().history_start, timezone=PARTITION_TIMEZONE, end_offset=1
)
property_month_partitions = MultiPartitionsDefinition(
    {
        PROPERTY_DIMENSION: StaticPartitionsDefinition(list(get_settings().property_ids)),
        MONTH_DIMENSION: month_partitions,
    }
)


@dataclass(frozen=True)
class SyncScope:
    property_id: str
    window_start: datetime
    window_end: datetime

    def is_live(self, now: datetime | None = None) -> bool:
        """The month containing now syncs incrementally; older ones fetch their window."""
        now = now or datetime.now(UTC)
        return self.window_start <= now < self.window_end


def sync_scope(partition_key: str) -> SyncScope:
    dimensions = property_month_partitions.get_partition_key_from_str(
        partition_key
    ).keys_by_dimension
    window = month_partitions.time_window_for_partition_key(dimensions[MONTH_DIMENSION])
    return SyncScope(
        dimensions[PROPERTY_DIMENSION],
        window.start.astimezone(UTC),
        window.end.astimezone(UTC),
    )


def live_partition_key(property_id: str, now: datetime | None = None) -> MultiPartitionKey:
    now = now or datetime.now(UTC)
    month = month_partitions.get_partition_key_for_timestamp(now.timestamp())
    return MultiPartitionKey({PROPERTY_DIMENSION: property_id, MONTH_DIMENSION: month})

"""Partitions: one HostPMS property × one month of record updates.

An operator backfills one property, or a range of months of one property, from
the UI (two years of history is 24 runs). The month that contains "now" is the
live partition: the hourly schedule materialises it incrementally from the
property's checkpoints; older months fetch exactly their window of ``updated_at``.
The definition is built from settings when the code location loads, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dagster import (
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
)

from hostpms_pipeline.settings import Settings

PROPERTY_DIMENSION = "property"
MONTH_DIMENSION = "month"
PARTITION_TIMEZONE = "Europe/Lisbon"
MONTH_KEY_FORMAT = "%Y-%m-%d"  # the first day of the month, as Dagster's monthly keys


def property_month_partitions(settings: Settings) -> MultiPartitionsDefinition:
    months = MonthlyPartitionsDefinition(
        start_date=settings.history_start, timezone=PARTITION_TIMEZONE, end_offset=1
    )
    properties = StaticPartitionsDefinition(list(settings.property_ids))
    return MultiPartitionsDefinition({PROPERTY_DIMENSION: properties, MONTH_DIMENSION: months})


@dataclass(frozen=True)
class SyncScope:
    property_id: str
    window_start: datetime
    window_end: datetime

    def is_live(self, now: datetime | None = None) -> bool:
        """The month containing now syncs incrementally; older ones fetch their window."""
        now = now or datetime.now(UTC)
        return self.window_start <= now < self.window_end


def _dimensions(partition_key: str) -> dict[str, str]:
    if isinstance(partition_key, MultiPartitionKey):
        return partition_key.keys_by_dimension
    # Dagster writes a multi-partition key's dimensions in name order, joined by "|".
    month, property_id = partition_key.split("|", 1)
    return {MONTH_DIMENSION: month, PROPERTY_DIMENSION: property_id}


def sync_scope(partition_key: str) -> SyncScope:
    dimensions = _dimensions(partition_key)
    zone = ZoneInfo(PARTITION_TIMEZONE)
    start = datetime.strptime(dimensions[MONTH_DIMENSION], MONTH_KEY_FORMAT).replace(tzinfo=zone)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return SyncScope(dimensions[PROPERTY_DIMENSION], start.astimezone(UTC), end.astimezone(UTC))


def live_partition_key(property_id: str, now: datetime | None = None) -> MultiPartitionKey:
    local = (now or datetime.now(UTC)).astimezone(ZoneInfo(PARTITION_TIMEZONE))
    month = local.date().replace(day=1).strftime(MONTH_KEY_FORMAT)
    return MultiPartitionKey({PROPERTY_DIMENSION: property_id, MONTH_DIMENSION: month})

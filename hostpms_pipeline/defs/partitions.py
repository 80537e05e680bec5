"""Partitions: one HostPMS property × one month of record updates.

An operator backfills one property, or a range of months of one property, from
the UI (two years of history is 24 runs). The month that contains "now" is the
live partition: the hourly schedule materialises it incrementally from the
property's checkpoints; older months fetch exactly their window of ``updated_at``.
The definition is built from settings when the code location loads, never at import.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterInstance,
    DeleteDynamicPartitionsRequest,
    DynamicPartitionsDefinition,
    MonthlyPartitionsDefinition,
    MultiPartitionKey,
    MultiPartitionsDefinition,
)

from hostpms_pipeline.settings import Settings

PROPERTY_DIMENSION = "property"
MONTH_DIMENSION = "month"
PARTITION_TIMEZONE = "Europe/Lisbon"
MONTH_KEY_FORMAT = "%Y-%m-%d"  # the first day of the month, as Dagster's monthly keys
PROPERTIES_PARTITIONS_NAME = "hostpms_properties"
PROPERTIES = DynamicPartitionsDefinition(name=PROPERTIES_PARTITIONS_NAME)


def month_partitions(settings: Settings) -> MonthlyPartitionsDefinition:
    return MonthlyPartitionsDefinition(
        start_date=settings.history_start, timezone=PARTITION_TIMEZONE, end_offset=1
    )


def property_month_partitions(settings: Settings) -> MultiPartitionsDefinition:
    return MultiPartitionsDefinition(
        {PROPERTY_DIMENSION: PROPERTIES, MONTH_DIMENSION: month_partitions(settings)}
    )


def register_properties(instance: DagsterInstance, property_ids: Iterable[str]) -> list[str]:
    """Add the properties missing from the instance's property dimension; returns those added."""
    known = set(instance.get_dynamic_partitions(PROPERTIES_PARTITIONS_NAME))
    missing = [p for p in dict.fromkeys(property_ids) if p not in known]
    if missing:
        instance.add_dynamic_partitions(PROPERTIES_PARTITIONS_NAME, missing)
    return missing


def unregister_property(instance: DagsterInstance, property_id: str) -> bool:
    """Take a disconnected property out of the dimension: no run can be launched for it."""
    if not instance.has_dynamic_partition(PROPERTIES_PARTITIONS_NAME, property_id):
        return False
    instance.delete_dynamic_partition(PROPERTIES_PARTITIONS_NAME, property_id)
    return True


def reconcile_requests(
    known: Iterable[str], active: Iterable[str], disconnected: Iterable[str]
) -> list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest]:
    """What a sensor asks of the instance so the dimension holds the active properties and
    none of the disconnected ones (a property merely dropped from settings keeps its history)."""
    known = set(known)
    add = [p for p in dict.fromkeys(active) if p not in known]
    delete = sorted(known & set(disconnected))
    requests: list[AddDynamicPartitionsRequest | DeleteDynamicPartitionsRequest] = []
    if add:
        requests.append(AddDynamicPartitionsRequest(PROPERTIES_PARTITIONS_NAME, add))
    if delete:
        requests.append(DeleteDynamicPartitionsRequest(PROPERTIES_PARTITIONS_NAME, delete))
    return requests


def month_key(moment: datetime) -> str:
    """The month partition holding ``moment`` (months are Lisbon months)."""
    local = moment.astimezone(ZoneInfo(PARTITION_TIMEZONE))
    return local.date().replace(day=1).strftime(MONTH_KEY_FORMAT)


def property_month_key(property_id: str, month: str) -> MultiPartitionKey:
    return MultiPartitionKey({PROPERTY_DIMENSION: property_id, MONTH_DIMENSION: month})


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
    return property_month_key(property_id, month_key(now or datetime.now(UTC)))

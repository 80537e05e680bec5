"""Column layout of the unified booking and of rejected records (contract section 5).

One Arrow schema shared by the transform, the PostgreSQL store and the Parquet
dataset, so the three cannot drift apart. Columns beyond the contract's: the
original (unmapped) values, the taxes used by the IVA check, the source's own
``updated_at`` that decides which state is newest, where the raw record lies,
when its event was received, and a hash of the business state that decides
whether a newer state really changed anything (and so bumps ``version``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

SOURCE = "hostpms"
UNKNOWN = "unknown"
MONEY = pa.decimal128(12, 2)
TIMESTAMP = pa.timestamp("us", tz="UTC")

# A Parquet partition: booked_at's (year, month, day) in UTC; None for bookings without booked_at.
DayPartition = tuple[int, int, int] | None


def day_partition(day: date | None) -> DayPartition:
    return None if day is None else (day.year, day.month, day.day)


def partition_dates(partitions: Iterable[DayPartition]) -> list[date]:
    """The dates of the partitions that have one (every one but the no-booked_at partition)."""
    return [date(*partition) for partition in partitions if partition is not None]


def utc_dates(moments: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The UTC date of each zone-aware timestamp (a booking's partition, for booked_at)."""
    # Dropping the zone keeps the UTC wall time and avoids a per-value zone lookup.
    return moments.cast(pa.timestamp("us")).cast(pa.date32())


def day_runs(sorted_days: pa.Array | pa.ChunkedArray) -> list[tuple[DayPartition, int, int]]:
    """``(partition, first row, row count)`` of each run of equal days in ``sorted_days``."""
    runs = pc.run_end_encode(sorted_days)
    ends = runs.run_ends.to_pylist()
    firsts = [0, *ends][: len(ends)]
    days = runs.values.to_pylist()
    return [
        (day_partition(day), first, end - first)
        for day, first, end in zip(days, firsts, ends, strict=True)
    ]


def first_of_each_id(ids: pa.Array | pa.ChunkedArray) -> pa.BooleanArray:
    """Per row, whether its id differs from the previous row's: with equal ids adjacent,
    the first row of each id."""
    if len(ids) == 0:
        return pa.array([], pa.bool_())
    changed = pc.not_equal(ids[1:], ids[:-1])
    changed = changed.combine_chunks() if isinstance(changed, pa.ChunkedArray) else changed
    return pa.concat_arrays([pa.array([True]), changed])


# Natural key of a booking (PRD: deduplicate on source + external_id + hotel_id).
BOOKING_KEY = ("source", "external_id", "hotel_id")

# Mapped field -> column that keeps the value as HostPMS sent it.
MAPPED_FIELDS = {
    "room_type": "room_type_original",
    "status": "status_original",
    "channel": "channel_original",
    "rate_plan": "rate_plan_original",
}

BOOKING_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # uuid text, deterministic
        pa.field("external_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("hotel_id", pa.string(), nullable=False),
        pa.field("guest_name", pa.string()),
        pa.field("guest_email", pa.string()),
        pa.field("guest_phone", pa.string()),
        pa.field("room_number", pa.string()),
        pa.field("room_type", pa.string(), nullable=False),
        pa.field("room_type_original", pa.string()),
        pa.field("check_in_date", pa.date32(), nullable=False),
        pa.field("check_out_date", pa.date32(), nullable=False),
        pa.field("booked_at", TIMESTAMP),
        pa.field("total_amount", MONEY, nullable=False),
        pa.field("currency", pa.string()),
        pa.field("iva_amount", MONEY),
        pa.field("tourist_tax_amount", MONEY),
        pa.field("rate_plan", pa.string(), nullable=False),
        pa.field("rate_plan_original", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("status_original", pa.string()),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("channel_original", pa.string()),
        pa.field("payment_method", pa.string()),
        pa.field("lead_time", pa.int32()),
        pa.field("length_of_stay", pa.int32(), nullable=False),
        pa.field("source_updated_at", TIMESTAMP, nullable=False),
        pa.field("event_received_at", TIMESTAMP),
        pa.field("raw_location", pa.string()),
        pa.field("state_hash", pa.string(), nullable=False),
        pa.field("synced_at", TIMESTAMP, nullable=False),
        pa.field("version", pa.int32(), nullable=False),
    ]
)

# Columns whose values make up a booking's state: a newer record whose state hash
# equals the stored one changes nothing and keeps the version.
STATE_COLUMNS = tuple(
    name
    for name in BOOKING_SCHEMA.names
    if name
    not in {
        "id",
        "source_updated_at",
        "event_received_at",
        "raw_location",
        "state_hash",
        "synced_at",
        "version",
    }
)

REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("hotel_id", pa.string()),  # the property the page was polled for
        pa.field("external_id", pa.string()),  # null when the record had none
        pa.field("reason", pa.string(), nullable=False),  # machine-readable code
        pa.field("detail", pa.string()),  # human-readable, never guest PII
        pa.field("raw_location", pa.string(), nullable=False),  # file holding the record
        pa.field("record_index", pa.int32(), nullable=False),  # position inside that file
        pa.field("source_updated_at", TIMESTAMP),
        pa.field("rejected_at", TIMESTAMP, nullable=False),
    ]
)

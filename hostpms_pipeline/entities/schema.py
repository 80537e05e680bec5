"""Column layout of every entity's rows and of rejected records, from the entity's spec.

One Arrow schema per entity, shared by the transform, the PostgreSQL store and
the Parquet dataset, so the three cannot drift apart. Besides the spec's own
columns (first the natural key, last the bookkeeping): the source's
``updated_at`` that decides which state is newest, where the raw record lies,
when its event was received, and a hash of the business state that decides
whether a newer state really changed anything (and so bumps ``version``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.entities.spec import ColumnType, EntitySpec

UNKNOWN = "unknown"

MONEY = pa.decimal128(12, 2)
TIMESTAMP = pa.timestamp("us", tz="UTC")
# The Arrow type of each of the spec vocabulary's column types.
ARROW_TYPES: dict[ColumnType, pa.DataType] = {
    "string": pa.string(),
    "boolean": pa.bool_(),
    "int32": pa.int32(),
    "date": pa.date32(),
    "money": MONEY,
    "timestamp": TIMESTAMP,
}

# Natural key (PRD: deduplicate on source + external_id + hotel_id); id is uuid5 of it.
NATURAL_KEY = ("source", "external_id", "hotel_id")


KEY_FIELDS = (
    pa.field("id", pa.string(), nullable=False),  # uuid text, deterministic
    pa.field("external_id", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("hotel_id", pa.string(), nullable=False),
)
BOOKKEEPING_FIELDS = (
    pa.field("source_updated_at", TIMESTAMP, nullable=False),
    pa.field("event_received_at", TIMESTAMP),
    pa.field("raw_location", pa.string()),
    pa.field("state_hash", pa.string(), nullable=False),
    pa.field("synced_at", TIMESTAMP, nullable=False),
    pa.field("version", pa.int32(), nullable=False),
)
# Not part of a row's state: a newer record whose other columns hash the same changes
# nothing and keeps the version.
NOT_STATE = frozenset(
    {
        "id",
        "source_updated_at",
        "event_received_at",
        "raw_location",
        "state_hash",
        "synced_at",
        "version",
    }
)
# Columns with few distinct values in a day, whatever the entity.
DICTIONARY_COLUMNS = ("hotel_id", "synced_at", "version")


@cache
def row_schema(spec: EntitySpec) -> pa.Schema:
    own = [pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in spec.columns]
    return pa.schema([*KEY_FIELDS, *own, *BOOKKEEPING_FIELDS])


# Parquet's stand-in for a person (GDPR): the keyed hash of the spec's guest_key column.
GUEST_KEY = "guest_key"


@cache
def parquet_schema(spec: EntitySpec) -> pa.Schema:
    """A Parquet dataset's rows: the row's columns less the personal ones, plus a pseudonymous
    ``guest_key`` after the key when the spec names a guest key. PostgreSQL keeps the clear values."""
    personal = set(spec.personal_columns)
    fields = [field for field in row_schema(spec) if field.name not in personal]
    if spec.guest_key is not None:
        fields.insert(len(KEY_FIELDS), pa.field(GUEST_KEY, pa.string()))
    return pa.schema(fields)


@cache
def state_columns(spec: EntitySpec) -> tuple[str, ...]:
    return tuple(name for name in row_schema(spec).names if name not in NOT_STATE)


@cache
def dictionary_columns(spec: EntitySpec) -> tuple[str, ...]:
    return (*DICTIONARY_COLUMNS, *(c.name for c in spec.columns if c.dictionary))


REJECTED_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("collection", pa.string(), nullable=False),
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

# --- Parquet day partitions -----------------------------------------------------------

# A Parquet partition: the partition column's (year, month, day) in UTC; None when it is empty.
DayPartition = tuple[int, int, int] | None


def day_partition(day: date | None) -> DayPartition:
    return None if day is None else (day.year, day.month, day.day)


def partition_dates(partitions: Iterable[DayPartition]) -> list[date]:
    """The dates of the partitions that have one (every one but the null partition)."""
    return [date(*partition) for partition in partitions if partition is not None]


def utc_dates(moments: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The UTC date of each zone-aware timestamp; dates stay as they are."""
    if pa.types.is_date32(moments.type):
        return moments
    # Dropping the zone keeps the UTC wall time and avoids a per-value zone lookup.
    return moments.cast(pa.timestamp("us")).cast(pa.date32())


def partition_days(spec: EntitySpec, rows: pa.Table) -> pa.Array:
    """Each row's Parquet partition date (null: the null partition)."""
    days = utc_dates(rows[spec.partition_column])
    return days.combine_chunks() if isinstance(days, pa.ChunkedArray) else days


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

"""Time writing and reading the Parquet bookings dataset on a local folder.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_parquet_store.py [rows] [days]
Prints seconds for a full write, a rewrite of 10 touched days, and a full read.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.entities.schema import MONEY, TIMESTAMP, partition_days, row_schema
from hostpms_pipeline.lake.parquet_store import read_rows, replace_partitions, touched_partitions

MICROS_PER_DAY = 86_400 * 1_000_000
FIRST_DAY = 20_000  # days since 1970-01-01: 2024-10-04
HOTELS = np.array(["PT-LIS-001", "PT-POR-002", "ES-MAD-001"], dtype=object)
Result = TypeVar("Result")

BOOKING_SCHEMA = row_schema(RESERVATIONS)


def euros(cents: np.ndarray) -> pa.Array:
    one_cent = pa.scalar(Decimal("0.01"), pa.decimal128(3, 2))
    return pc.multiply(pa.array(cents, pa.int32()).cast(pa.decimal128(10, 0)), one_cent).cast(MONEY)


def synthetic_bookings(row_count: int, day_count: int) -> pa.Table:
    """Bookings spread evenly over ``day_count`` booking days; unset columns are "x" or null."""
    random = np.random.default_rng(7)
    booked_day = FIRST_DAY + random.integers(0, day_count, row_count)
    booked_at = booked_day * MICROS_PER_DAY + random.integers(0, MICROS_PER_DAY, row_count)
    check_in = (booked_day + random.integers(0, 90, row_count)).astype(np.int32)
    nights = random.integers(1, 8, row_count).astype(np.int32)
    ids = pa.array([f"R{index:09d}" for index in range(row_count)])
    known = {
        "id": ids,
        "external_id": ids,
        "source": pa.array(np.full(row_count, "hostpms", dtype=object)),
        "hotel_id": pa.array(HOTELS[random.integers(0, len(HOTELS), row_count)]),
        "check_in_date": pa.array(check_in, pa.date32()),
        "check_out_date": pa.array(check_in + nights, pa.date32()),
        "booked_at": pa.array(booked_at, TIMESTAMP),
        "total_amount": euros(random.integers(5_000, 200_000, row_count)),
        "length_of_stay": pa.array(nights),
        "source_updated_at": pa.array(booked_at, TIMESTAMP),
        "synced_at": pa.array(booked_at, TIMESTAMP),
        "version": pa.array(np.ones(row_count, dtype=np.int32)),
    }
    filler = pa.array(np.full(row_count, "x", dtype=object))
    columns = [
        known[field.name]
        if field.name in known
        else filler
        if field.type == pa.string()
        else pa.nulls(row_count, field.type)
        for field in BOOKING_SCHEMA
    ]
    return pa.Table.from_arrays(columns, schema=BOOKING_SCHEMA)


def timed(label: str, action: Callable[[], Result]) -> Result:
    started = time.perf_counter()
    result = action()
    print(f"{label}: {time.perf_counter() - started:.2f} s")
    return result


def main() -> None:
    row_count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    day_count = int(sys.argv[2]) if len(sys.argv) > 2 else 700
    rows = synthetic_bookings(row_count, day_count)
    partitions = touched_partitions(RESERVATIONS, rows)
    print(f"{rows.num_rows} rows over {len(partitions)} day partitions")
    ten_days = set(sorted(partitions)[:10])
    days = partition_days(RESERVATIONS, rows).cast(pa.int32())
    rows_of_ten_days = rows.filter(pc.less(days, FIRST_DAY + 10))
    with tempfile.TemporaryDirectory() as folder:
        timed("full write", lambda: replace_partitions(folder, RESERVATIONS, rows, partitions))
        timed(
            "rewrite of 10 days",
            lambda: replace_partitions(folder, RESERVATIONS, rows_of_ten_days, ten_days),
        )
        read = timed("full read", lambda: read_rows(folder, RESERVATIONS))
    assert read.num_rows == row_count


if __name__ == "__main__":
    main()

"""The Parquet bookings dataset, on a local folder and on S3 (moto over HTTP)."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow.fs import FileSelector, FileType

from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.entities.schema import (
    GUEST_KEY,
    day_runs,
    first_of_each_id,
    parquet_schema,
    partition_days,
    row_schema,
)
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.parquet_store import FILE_NAME, filesystem_for, partition_path

# The bookings dataset's functions, as these tests call them.
BOOKING_SCHEMA = row_schema(RESERVATIONS)
# What the dataset holds: the rows less their personal columns, with a pseudonymous guest_key.
DATASET_SCHEMA = parquet_schema(RESERVATIONS)
as_dataset = partial(parquet_store.dataset_rows, RESERVATIONS)
dataset_summary = partial(parquet_store.dataset_summary, spec=RESERVATIONS)
read_bookings = partial(parquet_store.read_rows, spec=RESERVATIONS)
partition_of = partial(partition_days, RESERVATIONS)
touched_partitions = partial(parquet_store.touched_partitions, RESERVATIONS)


def replace_partitions(processed_url: str, rows: pa.Table, partitions) -> int:
    return parquet_store.replace_partitions(processed_url, RESERVATIONS, rows, partitions)


MARCH_5 = (2026, 3, 5)
MARCH_6 = (2026, 3, 6)


def booking(external_id: str, booked_at: datetime | None, **changes: Any) -> dict[str, Any]:
    row = {
        "id": f"id-{external_id}",
        "external_id": external_id,
        "source": "hostpms",
        "hotel_id": "PT-LIS-001",
        "guest_name": "Ana Silva",
        "guest_email": "ana@example.pt",
        "guest_phone": "+351900000000",
        "room_number": "101",
        "room_type": "double",
        "room_type_original": "DBL",
        "check_in_date": date(2026, 4, 1),
        "check_out_date": date(2026, 4, 3),
        "booked_at": booked_at,
        "total_amount": Decimal("245.67"),
        "currency": "EUR",
        "iva_amount": Decimal("13.91"),
        "tourist_tax_amount": None,
        "rate_plan": "flexible",
        "rate_plan_original": "BAR",
        "status": "confirmed",
        "status_original": "CONF",
        "channel": "direct",
        "channel_original": "WEB",
        "payment_method": "card",
        "lead_time": 27,
        "length_of_stay": 2,
        "source_updated_at": datetime(2026, 3, 7, 9, 15, 1, 123456, tzinfo=UTC),
        "event_received_at": None,
        "raw_location": "/raw/hostpms/page.json",
        "state_hash": "abc",
        "synced_at": datetime(2026, 3, 7, 9, 16, tzinfo=UTC),
        "version": 1,
    }
    return row | changes


def bookings(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=BOOKING_SCHEMA)


def at(key: tuple[int, int, int], hour: int = 12) -> datetime:
    return datetime(*key, hour, tzinfo=UTC)


def sorted_rows(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda row: (row["hotel_id"], row["external_id"]))


@pytest.fixture(params=["local", "s3"])
def processed_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "processed")
    return f"{request.getfixturevalue('s3_bucket_url')}/processed"


def partition_files(
    processed_url: str, key: tuple[int, int, int] | None
) -> dict[str, tuple[bytes, int]]:
    """Name -> (content, mtime in ns) of every file in one partition folder."""
    filesystem, root = filesystem_for(processed_url)
    folder = f"{root}/bookings/{partition_path(key)}"
    if filesystem.get_file_info(folder).type == FileType.NotFound:
        return {}
    files = {}
    for info in filesystem.get_file_info(FileSelector(folder)):
        with filesystem.open_input_stream(info.path) as stream:
            files[info.base_name] = (stream.read(), info.mtime_ns)
    return files


def test_partition_is_the_utc_date_of_booked_at() -> None:
    madrid = pa.timestamp("us", tz="Europe/Madrid")
    table = pa.table(
        {
            "booked_at": pa.array(
                [
                    datetime(2026, 3, 5, 23, 30, tzinfo=UTC),
                    datetime(2026, 3, 6, 0, 30, tzinfo=UTC),
                    None,
                ],
                madrid,
            )
        }
    )

    assert partition_of(table).to_pylist() == [date(2026, 3, 5), date(2026, 3, 6), None]
    assert touched_partitions(table) == {MARCH_5, MARCH_6, None}


def test_day_runs_locate_each_days_rows() -> None:
    days = pa.array([date(2026, 3, 5), date(2026, 3, 5), date(2026, 3, 6), None], pa.date32())

    assert day_runs(days) == [(MARCH_5, 0, 2), (MARCH_6, 2, 1), (None, 3, 1)]
    assert day_runs(days.slice(0, 0)) == []


def test_first_of_each_id_marks_where_an_id_starts() -> None:
    ids = pa.chunked_array([["a", "a", "b"], ["b", "c"]])

    assert first_of_each_id(ids).to_pylist() == [True, False, True, False, True]
    assert first_of_each_id(ids.slice(0, 0)).to_pylist() == []


def test_partition_path_is_hive_style_with_a_null_partition() -> None:
    assert partition_path((2026, 3, 5)) == "source=hostpms/year=2026/month=03/day=05"
    assert partition_path(None) == (
        "source=hostpms/year=__HIVE_DEFAULT_PARTITION__/month=__HIVE_DEFAULT_PARTITION__"
        "/day=__HIVE_DEFAULT_PARTITION__"
    )


def test_rows_round_trip_with_exact_types_one_file_per_partition(processed_url: str) -> None:
    rows = bookings(
        booking("A1", at(MARCH_5, 0)),
        booking(
            "A2", at(MARCH_5, 23), total_amount=Decimal("9999999999.99"), iva_amount=Decimal("0.01")
        ),
        booking("B1", at(MARCH_6), hotel_id="ES-MAD-001", guest_name=None),
    )

    written = replace_partitions(processed_url, rows, touched_partitions(rows))
    read = read_bookings(processed_url)

    assert written == 3
    assert read.schema == DATASET_SCHEMA
    assert sorted_rows(read) == sorted_rows(as_dataset(rows))
    assert set(partition_files(processed_url, MARCH_5)) == {FILE_NAME}
    assert set(partition_files(processed_url, MARCH_6)) == {FILE_NAME}
    summary = dataset_summary(processed_url)
    assert summary.row_count == 3
    assert [file.split("/bookings/")[1] for file in summary.files] == [
        f"{partition_path(MARCH_5)}/{FILE_NAME}",
        f"{partition_path(MARCH_6)}/{FILE_NAME}",
    ]


def test_hash_columns_are_stored_uncompressed_and_the_rest_with_snappy(tmp_path: Path) -> None:
    processed_url = str(tmp_path / "processed")
    replace_partitions(processed_url, bookings(booking("A1", at(MARCH_5))), [MARCH_5])
    path = tmp_path / "processed" / "bookings" / partition_path(MARCH_5) / FILE_NAME
    group = pq.ParquetFile(path).metadata.row_group(0)
    codecs = {
        group.column(i).path_in_schema: group.column(i).compression
        for i in range(group.num_columns)
    }
    assert {name for name, codec in codecs.items() if codec == "UNCOMPRESSED"} == {
        "id", "state_hash", GUEST_KEY
    }  # fmt: skip
    assert set(codecs.values()) == {"UNCOMPRESSED", "SNAPPY"}


def test_read_selected_columns_keeps_their_types(processed_url: str) -> None:
    rows = bookings(booking("A1", at(MARCH_5)))
    replace_partitions(processed_url, rows, [MARCH_5])

    read = read_bookings(processed_url, columns=["source", "total_amount", "check_in_date"])

    assert read.schema == pa.schema(
        [BOOKING_SCHEMA.field(name) for name in ("source", "total_amount", "check_in_date")]
    )
    assert read.to_pylist() == [
        {"source": "hostpms", "total_amount": Decimal("245.67"), "check_in_date": date(2026, 4, 1)}
    ]


def test_replacing_one_partition_leaves_the_others_byte_identical(processed_url: str) -> None:
    rows = bookings(
        booking("A1", at(MARCH_5)), booking("A2", at(MARCH_5)), booking("B1", at(MARCH_6))
    )
    replace_partitions(processed_url, rows, touched_partitions(rows))
    untouched_before = partition_files(processed_url, MARCH_6)

    replacement = bookings(booking("A1", at(MARCH_5), status="cancelled", version=2))
    replace_partitions(processed_url, replacement, [MARCH_5])

    assert partition_files(processed_url, MARCH_6) == untouched_before
    read = read_bookings(processed_url, columns=["external_id", "status", "version"])
    assert sorted(read.to_pylist(), key=lambda row: row["external_id"]) == [
        {"external_id": "A1", "status": "cancelled", "version": 2},
        {"external_id": "B1", "status": "confirmed", "version": 1},
    ]


def test_a_listed_partition_without_rows_is_removed(processed_url: str) -> None:
    rows = bookings(booking("A1", at(MARCH_5)), booking("B1", at(MARCH_6)))
    replace_partitions(processed_url, rows, touched_partitions(rows))

    written = replace_partitions(processed_url, bookings(), [MARCH_5])

    assert written == 0
    assert partition_files(processed_url, MARCH_5) == {}
    assert read_bookings(processed_url, columns=["external_id"]).to_pylist() == [
        {"external_id": "B1"}
    ]


def test_rows_outside_the_listed_partitions_are_refused_and_nothing_is_written(
    processed_url: str,
) -> None:
    rows = bookings(booking("A1", at(MARCH_5)), booking("B1", at(MARCH_6)))

    with pytest.raises(ValueError, match="not in the list"):
        replace_partitions(processed_url, rows, [MARCH_5])

    assert dataset_summary(processed_url).row_count == 0


def test_same_rows_make_the_same_file_whatever_their_order(processed_url: str) -> None:
    first, second = booking("A1", at(MARCH_5)), booking("A2", at(MARCH_5))
    replace_partitions(processed_url, bookings(first, second), [MARCH_5])
    content_before = partition_files(processed_url, MARCH_5)[FILE_NAME][0]

    replace_partitions(processed_url, bookings(second, first), [MARCH_5])

    assert partition_files(processed_url, MARCH_5)[FILE_NAME][0] == content_before


def test_bookings_without_booked_at_go_to_the_null_partition(processed_url: str) -> None:
    rows = bookings(booking("U1", None), booking("A1", at(MARCH_5)))

    replace_partitions(processed_url, rows, touched_partitions(rows))

    assert set(partition_files(processed_url, None)) == {FILE_NAME}
    assert sorted_rows(read_bookings(processed_url)) == sorted_rows(as_dataset(rows))


def test_leftover_files_in_a_replaced_partition_are_removed(processed_url: str) -> None:
    replace_partitions(processed_url, bookings(booking("A1", at(MARCH_5))), [MARCH_5])
    filesystem, root = filesystem_for(processed_url)
    with filesystem.open_output_stream(
        f"{root}/bookings/{partition_path(MARCH_5)}/part-1.parquet"
    ) as stream:
        stream.write(b"from an older layout")

    replace_partitions(processed_url, bookings(booking("A2", at(MARCH_5))), [MARCH_5])

    assert set(partition_files(processed_url, MARCH_5)) == {FILE_NAME}
    assert read_bookings(processed_url, columns=["external_id"]).to_pylist() == [
        {"external_id": "A2"}
    ]


def test_empty_dataset_reads_as_an_empty_booking_table(processed_url: str) -> None:
    assert read_bookings(processed_url).schema == DATASET_SCHEMA
    assert read_bookings(processed_url).num_rows == 0
    assert dataset_summary(processed_url).files == ()


def test_rows_from_another_source_are_refused(tmp_path: Path) -> None:
    rows = bookings(booking("A1", at(MARCH_5), source="otherpms"))

    with pytest.raises(ValueError, match="source"):
        replace_partitions(str(tmp_path), rows, [MARCH_5])


def test_local_reader_sees_the_old_or_the_new_partition_never_a_partial_file(
    tmp_path: Path,
) -> None:
    url = str(tmp_path)
    versions = [
        bookings(booking("A1", at(MARCH_5))),
        bookings(*(booking(f"B{index:04d}", at(MARCH_5)) for index in range(3_000))),
    ]
    replace_partitions(url, versions[0], [MARCH_5])
    seen_counts: set[int] = set()
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            seen_counts.add(read_bookings(url, columns=["external_id"]).num_rows)

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for round_number in range(30):
            replace_partitions(url, versions[round_number % 2], [MARCH_5])
    finally:
        done.set()
        reader.join()

    assert seen_counts <= {1, 3_000}

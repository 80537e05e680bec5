"""The Parquet export merging a run's own rows, and falling back to PostgreSQL when it may not."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.entities.schema import REJECTED_SCHEMA, parquet_schema
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.parquet_delta import ParquetDelta
from hostpms_pipeline.warehouse import entity_store, outbox
from hostpms_pipeline_tests.test_booking_store import T0, booking, table

MARCH_1 = T0.replace(day=1)


def batch(*rows: dict[str, Any]) -> pipeline.MappedBatch:
    return pipeline.MappedBatch(
        RESERVATIONS, [], len(rows), table(*rows), REJECTED_SCHEMA.empty_table()
    )


def first_load(conn: psycopg.Connection, processed: str) -> None:
    """Ten bookings over five booked_at days, exported (from PostgreSQL: no delta)."""
    rows = [booking(n, booked_at=MARCH_1 + timedelta(days=n % 5)) for n in range(10)]
    pipeline.load_postgres(conn, batch(*rows))
    pipeline.export_parquet(conn, RESERVATIONS, processed)


def assert_parquet_equals_postgres(conn: psycopg.Connection, processed: str) -> None:
    in_postgres = parquet_store.dataset_rows(
        RESERVATIONS, entity_store.fetch_rows(conn, RESERVATIONS)
    ).sort_by("id")
    assert parquet_store.read_rows(processed, RESERVATIONS).sort_by("id").equals(in_postgres)


def newer(number: int, **changes: Any) -> dict[str, Any]:
    defaults = {
        "booked_at": MARCH_1 + timedelta(days=number % 5),
        "source_updated_at": T0 + timedelta(hours=1),
        "state_hash": "state-2",
    }
    return booking(number, **{**defaults, **changes})


def test_a_run_merges_its_own_rows_and_rebuilds_a_day_a_booking_left(
    pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    processed = str(tmp_path / "processed")
    first_load(pg_conn, processed)
    moved_to = MARCH_1 + timedelta(days=20)
    with ParquetDelta(RESERVATIONS) as delta:
        pipeline.load_postgres(
            pg_conn, batch(newer(0, status="cancelled"), booking(10, booked_at=MARCH_1)), delta
        )
        # The same booking again in a later chunk of the run, and one that changes day.
        later = newer(
            0, status="no_show", source_updated_at=T0 + timedelta(hours=2), state_hash="state-3"
        )
        pipeline.load_postgres(pg_conn, batch(later, newer(1, booked_at=moved_to)), delta)
        exported = pipeline.export_parquet(pg_conn, RESERVATIONS, processed, delta=delta)

    # Day 1 lost booking 1 (rebuilt from PostgreSQL); day 0 and the new day 20 merged.
    assert (exported.partitions, exported.merged) == (3, 2)
    assert_parquet_equals_postgres(pg_conn, processed)
    statuses = parquet_store.read_rows(
        processed, RESERVATIONS, ["external_id", "status"]
    ).to_pylist()
    assert {"external_id": "RSV-0", "status": "no_show"} in statuses


def test_a_day_another_writer_changed_is_rebuilt_from_postgres(
    pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    processed = str(tmp_path / "processed")
    first_load(pg_conn, processed)
    with ParquetDelta(RESERVATIONS) as delta:
        pipeline.load_postgres(pg_conn, batch(newer(0, status="cancelled")), delta)
        # Another run writes the same property (and day) before this one exports.
        pipeline.load_postgres(pg_conn, batch(newer(5, status="no_show")))
        exported = pipeline.export_parquet(pg_conn, RESERVATIONS, processed, delta=delta)

    assert exported.merged == 0
    assert_parquet_equals_postgres(pg_conn, processed)


def test_a_newer_row_already_exported_is_not_replaced_by_an_older_one(
    pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    processed = str(tmp_path / "processed")
    first_load(pg_conn, processed)
    older = newer(0, status="cancelled")
    newest = newer(0, status="no_show", source_updated_at=T0 + timedelta(hours=3))
    # What a slower run kept, against a file a faster run already brought to a newer state.
    stored_older = table(older)
    pipeline.load_postgres(pg_conn, batch(newest))
    pipeline.export_parquet(pg_conn, RESERVATIONS, processed)
    parquet_store.merge_partitions(
        processed,
        RESERVATIONS,
        stored_older,
        parquet_store.touched_partitions(RESERVATIONS, stored_older),
    )

    assert_parquet_equals_postgres(pg_conn, processed)


def test_rows_kept_by_a_run_that_died_before_exporting_are_rebuilt_by_the_next(
    pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    processed = str(tmp_path / "processed")
    first_load(pg_conn, processed)
    with ParquetDelta(RESERVATIONS) as delta:  # this run stops after loading: its copy is gone
        pipeline.load_postgres(pg_conn, batch(newer(0, status="cancelled")), delta)
    with ParquetDelta(RESERVATIONS) as next_run:
        pipeline.load_postgres(pg_conn, batch(newer(2, status="cancelled")), next_run)
        exported = pipeline.export_parquet(pg_conn, RESERVATIONS, processed, delta=next_run)

    # Day 0, queued by the run that died, is rebuilt; day 2, this run's own, merged.
    assert (exported.partitions, exported.merged) == (2, 1)
    assert_parquet_equals_postgres(pg_conn, processed)
    assert outbox.take(pg_conn, "bookings") == {}
    pg_conn.rollback()


def test_merged_files_equal_files_rebuilt_from_postgres(
    pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    merged, rebuilt = str(tmp_path / "merged"), str(tmp_path / "rebuilt")
    first_load(pg_conn, merged)

    def files(root: str) -> dict[str, pa.Table]:
        summary = parquet_store.dataset_summary(root, RESERVATIONS)
        return {Path(f).relative_to(root).as_posix(): pq.read_table(f) for f in summary.files}

    later = T0 + timedelta(hours=2)
    runs = [
        [newer(3, status="cancelled"), booking(11, booked_at=MARCH_1)],  # a new booking: sorted in
        [newer(3, status="no_show", source_updated_at=later)],  # in place, before RSV-8 of its day
        # A day with no file yet, its bookings given out of file order.
        [booking(n, booked_at=MARCH_1 + timedelta(days=30)) for n in (15, 12, 14)],
    ]
    for rows in runs:
        with ParquetDelta(RESERVATIONS) as delta:
            pipeline.load_postgres(pg_conn, batch(*rows), delta)
            assert pipeline.export_parquet(pg_conn, RESERVATIONS, merged, delta=delta).merged > 0
        everything = entity_store.fetch_rows(pg_conn, RESERVATIONS)
        parquet_store.replace_partitions(
            rebuilt,
            RESERVATIONS,
            everything,
            parquet_store.touched_partitions(RESERVATIONS, everything),
        )
        assert files(merged).keys() == files(rebuilt).keys()
        assert all(files(merged)[name].equals(table) for name, table in files(rebuilt).items())


def test_a_run_keeps_its_rows_pseudonymised_with_their_guest_keys(
    pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    processed = str(tmp_path / "processed")
    first_load(pg_conn, processed)
    with ParquetDelta(RESERVATIONS) as delta:
        pipeline.load_postgres(pg_conn, batch(newer(0, guest_name="Maria Santos")), delta)
        kept = delta.rows_for([(2024, 3, 1)])  # booking 0's booked_at day
        spilled = b"".join(path.read_bytes() for path in Path(delta._folder.name).iterdir())
    assert kept.schema == parquet_schema(RESERVATIONS)
    assert kept.num_rows == 1
    assert kept["guest_key"][0].as_py()
    assert b"Maria Santos" not in spilled

"""The Glue job's script, run as Glue runs it (its own process and Spark ``local[2]``),
against moto's S3 server and real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import orjson

from hostpms_pipeline.entities import GUESTS, RESERVATIONS
from hostpms_pipeline.glue import job
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.raw_layout import polling_key
from hostpms_pipeline.lake.storage import open_store
from hostpms_pipeline.warehouse import database, entity_store, ledger
from hostpms_pipeline_tests.test_entities import PT_GUEST
from hostpms_pipeline_tests.test_transform import reservation

PROPERTY = "PT-LIS-001"


def land(store, collection: str, records: list, arrived: datetime) -> str:
    body = {"kind": "polling", "source": "hostpms", "property_id": PROPERTY,
            "collection": collection, "received_at": arrived.isoformat(), "data": records}  # fmt: skip
    return store.put(polling_key(PROPERTY, collection, arrived), orjson.dumps(body))


def run_job(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hostpms_pipeline.glue.job", *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ},
        check=False,
    )


def test_the_glue_job_loads_one_window_of_raw_s3_into_postgres_and_parquet(
    s3_bucket_url, pg_url, pg_schema, spark_session
):
    raw_url, processed_url = f"{s3_bucket_url}/raw", f"{s3_bucket_url}/processed"
    store = open_store(raw_url)
    inside = datetime(2026, 1, 10, 8, tzinfo=UTC)
    land(store, RESERVATIONS.collection, [reservation(reservation_id="R-1"),
                                          reservation(reservation_id=None)], inside)  # fmt: skip
    land(
        store, RESERVATIONS.collection, [reservation(reservation_id="R-2")], inside.replace(day=20)
    )
    land(store, GUESTS.collection, [PT_GUEST], inside)
    outside = land(
        store, RESERVATIONS.collection, [reservation(reservation_id="R-LATER")],
        datetime(2026, 2, 1, tzinfo=UTC),
    )  # fmt: skip

    window = ["--window_start", "2026-01-01", "--window_end", "2026-02-01"]
    arguments = ["--raw_url", raw_url, "--processed_url", processed_url,
                 "--property_id", PROPERTY, *window, "--database_url", pg_url,
                 "--db_schema", pg_schema, "--spark_master", "local[2]"]  # fmt: skip
    done = run_job(*arguments)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{PROPERTY}/reservations: {{'files': 2, 'inserted': 2" in done.stdout

    with database.connect(pg_url, pg_schema) as conn:
        bookings = entity_store.fetch_rows(conn, RESERVATIONS)
        assert sorted(bookings["external_id"].to_pylist()) == ["R-1", "R-2"]
        assert entity_store.row_counts(conn, GUESTS) == {PROPERTY: 1}
        rejected = conn.execute("SELECT reason FROM rejected_records").fetchall()
        assert rejected == [("missing_reservation_id",)]
        assert outside not in ledger.recorded_locations(conn, [outside])
        assert not ledger.pending_files(conn)
    parquet = parquet_store.read_rows(processed_url, RESERVATIONS)
    assert sorted(parquet["external_id"].to_pylist()) == ["R-1", "R-2"]

    # Run again (in this process: nothing is pending, so no Spark task starts): the files
    # are processed, nothing is loaded twice.
    again = job.run(job.arguments(arguments), spark_session)
    assert again["reservations"] == {
        "files": 0, "inserted": 0, "updated": 0, "unchanged": 0, "stale": 0, "rejected": 0
    }  # fmt: skip
    with database.connect(pg_url, pg_schema) as conn:
        assert entity_store.fetch_rows(conn, RESERVATIONS).num_rows == 2


def test_the_glue_job_names_a_missing_argument():
    done = run_job("--raw_url", "s3://raw")
    assert done.returncode != 0
    assert "--processed_url" in done.stderr

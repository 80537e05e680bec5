"""A damaged raw file is named and set aside, the rest goes on, and one command fetches it again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.ingest.polling import sync_incremental
from hostpms_pipeline.lake import raw_integrity
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.warehouse import database, ledger
from hostpms_pipeline_tests.fixtures.cli import run_hostpms
from hostpms_pipeline_tests.test_cli import count_bookings
from hostpms_pipeline_tests.test_pipeline import visible_reservations
from hostpms_pipeline_tests.test_polling import PROPERTY, connect, make_client  # noqa: F401


def land_pages(running_simulator, store, connect, page_limit: int = 50) -> list[str]:  # noqa: F811
    with make_client(running_simulator.base_url, page_limit=page_limit) as client:
        result = sync_incremental(client, store, connect, PROPERTY)
    assert len(result.locations) >= 3
    return result.locations


def path_of(location: str) -> Path:
    return Path(location.removeprefix("file://"))


def test_damaged_files_are_set_aside_with_their_reason_and_the_rest_is_read(
    running_simulator,
    tmp_path,
    connect,  # noqa: F811
):
    store = LocalObjectStore(tmp_path / "raw")
    first, truncated, changed, *rest = land_pages(running_simulator, store, connect)
    body = path_of(truncated).read_bytes()
    path_of(truncated).write_bytes(body[: len(body) // 2])  # cut short by hand
    original = path_of(changed).read_bytes()
    path_of(changed).write_bytes(original.replace(b'"PT-LIS-001"', b'"PT-LIS-002"', 1))
    junk = store.put("hostpms/PT-LIS-001/webhooks/reservation.updated/x_evt_1.json", b'{"data": [')
    with connect() as conn, conn.transaction():
        ledger.record_landed_file(
            conn, junk, PROPERTY, "webhook", "reservations", 1, datetime.now(UTC)
        )

    with connect() as conn:
        batch = pipeline.read_pending(RESERVATIONS, store, conn, PROPERTY)
        entries = {entry.location: entry for entry in raw_integrity.open_entries(conn, PROPERTY)}
        still_pending = ledger.pending_files(conn, PROPERTY)

    assert batch.locations == [first, *rest]
    assert set(batch.records.column("raw_location").to_pylist()) == {first, *rest}
    assert entries[truncated].reason == f"size {len(body) // 2} bytes, {len(body)} when landed"
    assert entries[changed].reason == "content differs from what landed (SHA-256)"
    assert entries[junk].reason.startswith("not JSON")
    assert entries[truncated].window_start is not None  # what `hostpms refetch` fetches again
    assert entries[truncated].window_end > entries[truncated].window_start
    assert entries[junk].window_start is None
    assert set(still_pending) == {first, *rest}  # the damaged ones no longer hold anything back


def test_a_missing_file_is_set_aside_too(running_simulator, tmp_path, connect):  # noqa: F811
    store = LocalObjectStore(tmp_path / "raw")
    first, gone, *rest = land_pages(running_simulator, store, connect)
    path_of(gone).unlink()
    with connect() as conn:
        batch = pipeline.read_pending(RESERVATIONS, store, conn, PROPERTY)
        [entry] = raw_integrity.open_entries(conn, PROPERTY)
    assert batch.locations == [first, *rest]
    assert (entry.location, entry.reason) == (gone, "missing from the raw store")


@pytest.fixture
def cli_connect(pg_url, pg_schema):
    def _connect() -> psycopg.Connection:
        return database.connect(pg_url, pg_schema)

    return _connect


def test_sync_goes_on_past_a_truncated_page_and_refetch_brings_its_records_back(
    running_simulator, cli_env, tmp_path, pg_url, pg_schema, cli_connect
):
    raw = tmp_path / "raw"
    env = {**cli_env, "HOSTPMS_RAW_URL": str(raw), "HOSTPMS_PROPERTY_IDS": PROPERTY}
    store = LocalObjectStore(raw)
    locations = land_pages(running_simulator, store, cli_connect)  # landed, not yet loaded
    damaged = locations[1]
    body = path_of(damaged).read_bytes()
    path_of(damaged).write_bytes(body[:-40])
    expected = len(visible_reservations(running_simulator, PROPERTY))

    synced, _ = run_hostpms("sync", env=env)
    output = synced.stdout + synced.stderr
    assert synced.returncode == 0, output
    assert f"raw file {damaged} set aside (size {len(body) - 40} bytes" in output
    assert f"`hostpms refetch {PROPERTY}`" in output
    assert "Traceback" not in output and "JSONDecodeError" not in output
    assert 0 < count_bookings(pg_url, pg_schema)[PROPERTY] < expected

    refetched, _ = run_hostpms("refetch", PROPERTY, env=env)
    assert refetched.returncode == 0, refetched.stdout + refetched.stderr
    assert f"{damaged}: fetched" in refetched.stdout
    assert count_bookings(pg_url, pg_schema) == {PROPERTY: expected}
    with cli_connect() as conn:
        assert raw_integrity.open_entries(conn, PROPERTY) == []

"""The bookings upsert, rejected records and reads back, against a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.entities.row_ids import SOURCE
from hostpms_pipeline.entities.schema import REJECTED_SCHEMA, row_schema
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.warehouse import database, entity_store, ledger
from hostpms_pipeline.warehouse.entity_store import UpsertStats, insert_rejected
from hostpms_pipeline_tests.test_transform import TR2_BOOKING, page, reservation

# The bookings table's functions, as these tests call them.
BOOKING_SCHEMA = row_schema(RESERVATIONS)


def upsert_bookings(conn: psycopg.Connection, rows: pa.Table, **options: Any) -> UpsertStats:
    return entity_store.upsert(conn, RESERVATIONS, rows, **options)


def fetch_bookings(conn: psycopg.Connection, **filters: Any) -> pa.Table:
    return entity_store.fetch_rows(conn, RESERVATIONS, **filters)


def booking_keys(conn: psycopg.Connection, **filters: Any) -> pa.Table:
    return entity_store.stored_keys(conn, RESERVATIONS, **filters)


def booking_counts(conn: psycopg.Connection) -> dict[str, int]:
    return entity_store.row_counts(conn, RESERVATIONS)


T0 = datetime(2024, 3, 15, 14, 0, tzinfo=UTC)


def booking(number: int, *, hotel_id: str = "PT-LIS-001", **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        **TR2_BOOKING,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{hotel_id}/{number}")),
        "external_id": f"RSV-{number}",
        "hotel_id": hotel_id,
        "source_updated_at": T0,
        "event_received_at": None,
        "raw_location": "hostpms/PT-LIS-001/polling/a.json",
        "state_hash": "state-1",
        "synced_at": T0,
    }
    row.update(overrides)
    return row


def table(*rows: dict[str, Any]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=BOOKING_SCHEMA)


def stored(conn: psycopg.Connection) -> dict[str, dict[str, Any]]:
    return {row["external_id"]: row for row in fetch_bookings(conn).to_pylist()}


def stats(
    inserted: int = 0, updated: int = 0, unchanged: int = 0, stale: int = 0
) -> tuple[int, ...]:
    return (inserted, updated, unchanged, stale)


def counts(result: UpsertStats) -> tuple[int, ...]:
    return (result.inserted, result.updated, result.unchanged, result.stale)


def test_first_upsert_inserts_with_version_1(pg_conn: psycopg.Connection) -> None:
    result = upsert_bookings(
        pg_conn, table(booking(1), booking(2), booking(3, hotel_id="ES-MAD-001"))
    )

    assert counts(result) == stats(inserted=3)
    rows = stored(pg_conn)
    assert {row["version"] for row in rows.values()} == {1}
    assert booking_counts(pg_conn) == {"ES-MAD-001": 1, "PT-LIS-001": 2}
    assert result.touched_partitions == {(2024, 3, 1)}


def test_empty_batch_is_a_no_op(pg_conn: psycopg.Connection) -> None:
    result = upsert_bookings(pg_conn, BOOKING_SCHEMA.empty_table())

    assert (counts(result), result.touched_partitions) == (stats(), frozenset())


def test_identical_replay_changes_nothing(pg_conn: psycopg.Connection) -> None:
    batch = table(booking(1), booking(2))
    upsert_bookings(pg_conn, batch)
    before = fetch_bookings(pg_conn)

    result = upsert_bookings(pg_conn, batch)

    assert counts(result) == stats(unchanged=2)
    assert result.touched_partitions == frozenset()
    assert fetch_bookings(pg_conn).equals(before)


def test_newer_state_bumps_version_by_one(pg_conn: psycopg.Connection) -> None:
    upsert_bookings(pg_conn, table(booking(1), booking(2)))
    first_synced = stored(pg_conn)["RSV-1"]["synced_at"]
    cancelled = booking(
        1,
        status="cancelled",
        status_original="cancelado",
        state_hash="state-2",
        source_updated_at=T0 + timedelta(hours=1),
    )

    result = upsert_bookings(pg_conn, table(cancelled, booking(2)))

    assert counts(result) == stats(updated=1, unchanged=1)
    rows = stored(pg_conn)
    assert (rows["RSV-1"]["status"], rows["RSV-1"]["version"]) == ("cancelled", 2)
    assert rows["RSV-1"]["synced_at"] > first_synced
    assert rows["RSV-2"]["version"] == 1


def test_older_state_arriving_later_is_ignored(pg_conn: psycopg.Connection) -> None:
    newer = booking(
        1, status="cancelled", state_hash="state-2", source_updated_at=T0 + timedelta(hours=1)
    )
    upsert_bookings(pg_conn, table(newer))

    result = upsert_bookings(pg_conn, table(booking(1)))

    assert counts(result) == stats(stale=1)
    row = stored(pg_conn)["RSV-1"]
    assert (row["status"], row["version"], row["source_updated_at"]) == (
        "cancelled",
        1,
        newer["source_updated_at"],
    )


def test_same_updated_at_with_other_content_is_a_replay(pg_conn: psycopg.Connection) -> None:
    upsert_bookings(pg_conn, table(booking(1)))

    result = upsert_bookings(pg_conn, table(booking(1, status="cancelled", state_hash="state-2")))

    assert counts(result) == stats(unchanged=1)
    assert stored(pg_conn)["RSV-1"]["status"] == "confirmed"


def test_newer_same_state_advances_updated_at_without_new_version(
    pg_conn: psycopg.Connection,
) -> None:
    upsert_bookings(pg_conn, table(booking(1)))
    synced = stored(pg_conn)["RSV-1"]["synced_at"]
    received = T0 + timedelta(hours=2, seconds=1)
    same_later = booking(
        1,
        source_updated_at=T0 + timedelta(hours=2),
        event_received_at=received,
        raw_location="hostpms/PT-LIS-001/webhook/b.json",
    )

    assert counts(upsert_bookings(pg_conn, table(same_later))) == stats(unchanged=1)
    row = stored(pg_conn)["RSV-1"]
    assert (row["version"], row["synced_at"]) == (1, synced)
    assert (row["source_updated_at"], row["event_received_at"]) == (
        T0 + timedelta(hours=2),
        received,
    )

    # A different state from between the two must now count as stale, not newer.
    between = booking(
        1, status="cancelled", state_hash="state-2", source_updated_at=T0 + timedelta(hours=1)
    )
    assert counts(upsert_bookings(pg_conn, table(between))) == stats(stale=1)
    assert stored(pg_conn)["RSV-1"]["status"] == "confirmed"


def test_event_received_at_keeps_the_newest(pg_conn: psycopg.Connection) -> None:
    late = T0 + timedelta(minutes=5)
    upsert_bookings(pg_conn, table(booking(1, event_received_at=late)))

    newer = booking(
        1,
        state_hash="state-2",
        status="cancelled",
        source_updated_at=T0 + timedelta(hours=1),
        event_received_at=T0 + timedelta(minutes=1),
    )
    upsert_bookings(pg_conn, table(newer))

    assert stored(pg_conn)["RSV-1"]["event_received_at"] == late


def test_the_rows_kept_for_the_export_are_the_rows_as_stored(pg_conn: psycopg.Connection) -> None:
    # Version, synced_at and event_received_at of replaced rows are computed, not read
    # back: each must come out as the UPDATE left it.
    received = T0 + timedelta(minutes=5)
    upsert_bookings(
        pg_conn, table(booking(1), booking(2, event_received_at=received), booking(3), booking(4))
    )
    later = T0 + timedelta(hours=1)
    result = upsert_bookings(
        pg_conn,
        table(
            booking(
                1, source_updated_at=later, state_hash="state-2", status="cancelled"
            ),  # new state
            booking(
                2, source_updated_at=later
            ),  # same state, received_at missing: the stored one stays
            booking(
                3, source_updated_at=T0 - timedelta(hours=1), state_hash="old"
            ),  # stale: not written
            booking(5),  # new booking
        ),
        keep_written=True,
    )

    assert result.written is not None
    written = {row["external_id"]: row for row in result.written.to_pylist()}
    assert sorted(written) == ["RSV-1", "RSV-2", "RSV-5"]
    rows = stored(pg_conn)
    assert {key: rows[key] for key in written} == written
    assert (written["RSV-1"]["version"], written["RSV-2"]["version"]) == (2, 1)
    assert written["RSV-2"]["event_received_at"] == received
    assert written["RSV-1"]["synced_at"] > rows["RSV-2"]["synced_at"]


def test_touched_partitions_include_the_old_booked_at_day(pg_conn: psycopg.Connection) -> None:
    upsert_bookings(
        pg_conn, table(booking(1), booking(2, booked_at=datetime(2024, 2, 1, 23, 59, tzinfo=UTC)))
    )
    moved = booking(
        1,
        booked_at=datetime(2024, 3, 2, 0, 30, tzinfo=UTC),
        state_hash="state-2",
        source_updated_at=T0 + timedelta(hours=1),
    )

    result = upsert_bookings(
        pg_conn, table(moved, booking(2, booked_at=datetime(2024, 2, 1, 23, 59, tzinfo=UTC)))
    )

    assert result.touched_partitions == {(2024, 3, 1), (2024, 3, 2)}
    unknown_day = booking(3, booked_at=None)
    assert upsert_bookings(pg_conn, table(unknown_day)).touched_partitions == {None}


def test_failing_batch_writes_nothing(pg_conn: psycopg.Connection) -> None:
    upsert_bookings(pg_conn, table(booking(1)))
    before = fetch_bookings(pg_conn)
    # A newer state PostgreSQL cannot store (text may not hold NUL) breaks the batch
    # at its last step, the update, after the new bookings were copied in.
    changed = booking(
        1, guest_name="Ana\x00", state_hash="state-2", source_updated_at=T0 + timedelta(hours=1)
    )
    broken = table(booking(5), changed, booking(6))

    with pytest.raises(psycopg.errors.CharacterNotInRepertoire):
        upsert_bookings(pg_conn, broken)

    assert fetch_bookings(pg_conn).equals(before)


def test_a_stored_booking_the_all_new_sample_missed_is_still_merged(
    pg_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    upsert_bookings(pg_conn, table(booking(1)))
    monkeypatch.setattr(entity_store, "ALL_NEW_SAMPLE_SIZE", 1)  # samples only the first row
    changed = booking(
        1, status="cancelled", state_hash="state-2", source_updated_at=T0 + timedelta(hours=1)
    )

    result = upsert_bookings(pg_conn, table(booking(2), changed, booking(3)), keep_written=True)

    assert counts(result) == stats(inserted=2, updated=1)
    rows = stored(pg_conn)
    assert sorted(rows) == ["RSV-1", "RSV-2", "RSV-3"]
    assert (rows["RSV-1"]["status"], rows["RSV-1"]["version"]) == ("cancelled", 2)
    assert result.written is not None and result.written.sort_by("id").equals(
        fetch_bookings(pg_conn).sort_by("id")
    )


def test_a_first_load_that_fails_writes_nothing(pg_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CharacterNotInRepertoire):
        upsert_bookings(pg_conn, table(booking(1), booking(2, guest_name="Ana\x00")))

    assert stored(pg_conn) == {}


def test_a_key_repeated_in_the_batch_is_refused(pg_conn: psycopg.Connection) -> None:
    upsert_bookings(pg_conn, table(booking(1)))
    before = fetch_bookings(pg_conn)
    newer = {"status": "cancelled", "source_updated_at": T0 + timedelta(hours=1)}
    repeated = table(
        booking(1, state_hash="state-2", **newer), booking(1, state_hash="state-3", **newer)
    )

    with pytest.raises(ValueError, match="more than once"):
        upsert_bookings(pg_conn, repeated)

    assert fetch_bookings(pg_conn).equals(before)


def test_write_joins_the_callers_transaction(pg_conn: psycopg.Connection) -> None:
    with pytest.raises(RuntimeError), pg_conn.transaction():
        upsert_bookings(pg_conn, table(booking(1)))
        raise RuntimeError("a later step of the same run failed")

    assert booking_counts(pg_conn) == {}


def test_concurrent_overlapping_upserts_end_as_one(pg_url: str, pg_schema: str) -> None:
    old = [booking(n, hotel_id=hotel) for n in range(40) for hotel in ("PT-LIS-001", "ES-MAD-001")]
    new = [
        booking(
            n,
            hotel_id=hotel,
            status="cancelled",
            state_hash="state-2",
            source_updated_at=T0 + timedelta(hours=1),
        )
        for n in range(20, 60)
        for hotel in ("ES-MAD-001", "PT-POR-002")
    ]
    batches = [table(*old), table(*new), table(*old), table(*new)]
    barrier = threading.Barrier(len(batches))

    def run(batch: pa.Table) -> None:
        with database.connect(pg_url, pg_schema) as conn:
            barrier.wait()
            upsert_bookings(conn, batch)

    with ThreadPoolExecutor(len(batches)) as pool:
        for finished in [pool.submit(run, batch) for batch in batches]:
            finished.result()  # re-raises a failed upsert here

    with database.connect(pg_url, pg_schema) as conn:
        concurrent_state = comparable(fetch_bookings(conn))
        conn.execute("TRUNCATE bookings")
        conn.commit()
        upsert_bookings(conn, table(*old))
        upsert_bookings(conn, table(*new))
        sequential_state = comparable(fetch_bookings(conn))
    # Every key ends at its newest state; only the version history depends on arrival order.
    assert without(concurrent_state, "version") == without(sequential_state, "version")
    assert len(concurrent_state) == 40 * 2 + 40 * 2 - 20
    assert {row["version"] for row in concurrent_state} <= {1, 2}


def comparable(bookings: pa.Table) -> list[dict[str, Any]]:
    rows = bookings.drop_columns(["synced_at"]).to_pylist()
    return sorted(rows, key=lambda row: (row["hotel_id"], row["id"]))


def without(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    return [{name: value for name, value in row.items() if name != column} for row in rows]


def test_money_and_text_round_trip_exactly(pg_conn: psycopg.Connection) -> None:
    rows = [
        booking(
            1,
            total_amount=Decimal("9999999999.99"),
            iva_amount=Decimal("0.01"),
            tourist_tax_amount=None,
        ),
        booking(
            2,
            total_amount=Decimal("-0.10"),
            iva_amount=Decimal("0.00"),
            guest_phone="",
            guest_name='Ana "Zé", Pérez\nSegunda linha',
        ),
    ]
    upsert_bookings(pg_conn, table(*rows))

    back = stored(pg_conn)

    for row in rows:
        got = back[row["external_id"]]
        for column in (
            "total_amount",
            "iva_amount",
            "tourist_tax_amount",
            "guest_phone",
            "guest_name",
        ):
            assert got[column] == row[column], column
    assert back["RSV-1"]["tourist_tax_amount"] is None and back["RSV-2"]["guest_phone"] == ""


def test_fetch_bookings_is_typed_and_filtered(pg_conn: psycopg.Connection) -> None:
    upsert_bookings(
        pg_conn,
        table(
            booking(1),
            booking(2, booked_at=datetime(2024, 3, 2, 0, 0, tzinfo=UTC)),
            booking(
                3, hotel_id="ES-MAD-001", booked_at=datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)
            ),
            booking(4, booked_at=None),
        ),
    )

    everything = fetch_bookings(pg_conn)
    march_first = fetch_bookings(pg_conn, partitions=[(2024, 3, 1)])
    madrid = fetch_bookings(pg_conn, hotel_id="ES-MAD-001")

    assert everything.schema == BOOKING_SCHEMA
    assert everything.num_rows == 4
    assert sorted(march_first["external_id"].to_pylist()) == ["RSV-1", "RSV-3"]
    assert madrid["external_id"].to_pylist() == ["RSV-3"]
    assert fetch_bookings(pg_conn, partitions=[]).num_rows == 0
    no_day = fetch_bookings(pg_conn, partitions=[None, (2024, 3, 2)])
    assert sorted(no_day["external_id"].to_pylist()) == ["RSV-2", "RSV-4"]


def test_booking_keys(pg_conn: psycopg.Connection) -> None:
    upsert_bookings(pg_conn, table(booking(1), booking(2, hotel_id="ES-MAD-001")))

    keys = booking_keys(pg_conn, hotel_id="ES-MAD-001")

    assert keys.column_names == ["id", "source", "external_id", "hotel_id", "version", "state_hash"]
    assert keys.to_pylist() == [
        {
            "id": booking(2, hotel_id="ES-MAD-001")["id"],
            "source": SOURCE,
            "external_id": "RSV-2",
            "hotel_id": "ES-MAD-001",
            "version": 1,
            "state_hash": "state-1",
        }
    ]


def rejected(index: int, location: str = "hostpms/PT-LIS-001/polling/a.json") -> dict[str, Any]:
    return {
        "source": SOURCE,
        "collection": "reservations",
        "hotel_id": "PT-LIS-001",
        "external_id": None,
        "reason": "missing_reservation_id",
        "detail": "record has no reservation_id",
        "raw_location": location,
        "record_index": index,
        "source_updated_at": T0,
        "rejected_at": T0,
    }


def test_insert_rejected_is_idempotent(pg_conn: psycopg.Connection) -> None:
    first = pa.Table.from_pylist([rejected(0), rejected(3)], schema=REJECTED_SCHEMA)
    again = pa.Table.from_pylist(
        [rejected(3), rejected(4), rejected(0, "other.json")], schema=REJECTED_SCHEMA
    )

    assert insert_rejected(pg_conn, first) == 2
    assert insert_rejected(pg_conn, first) == 0
    assert insert_rejected(pg_conn, again) == 2
    rows = pg_conn.execute(
        "SELECT raw_location, record_index, external_id FROM rejected_records ORDER BY 1, 2"
    )
    assert rows.fetchall() == [
        ("hostpms/PT-LIS-001/polling/a.json", 0, None),
        ("hostpms/PT-LIS-001/polling/a.json", 3, None),
        ("hostpms/PT-LIS-001/polling/a.json", 4, None),
        ("other.json", 0, None),
    ]


def test_pending_files_in_chunks_end_as_one_batch(
    pg_conn: psycopg.Connection, tmp_path: Path
) -> None:
    # Landing order: RSV-1 changes in three chunks, an older RSV-2 state lands after a newer one.
    states = [
        ("RSV-1", "2024-03-15T14:00:00Z", "confirmado"),
        ("RSV-2", "2024-03-15T15:00:00Z", "confirmado"),
        ("RSV-1", "2024-03-16T14:00:00Z", "cancelado"),
        ("RSV-3", "2024-03-16T15:00:00Z", "confirmado"),
        ("RSV-2", "2024-03-14T15:00:00Z", "no_show"),
        ("RSV-1", "2024-03-17T14:00:00Z", "check_in"),
    ]
    store = LocalObjectStore(tmp_path / "raw")
    for number, (reservation_id, updated_at, status) in enumerate(states):
        record = reservation(reservation_id=reservation_id, updated_at=updated_at, status=status)
        body = page([record])
        location = store.put(f"hostpms/PT-LIS-001/polling/page-{number}.json", body)
        landed_at = T0 + timedelta(seconds=number)
        ledger.record_landed_file(
            pg_conn, location, "PT-LIS-001", "polling", "reservations", 1, landed_at
        )
    pg_conn.commit()

    def process(files_per_chunk: int, processed: Path) -> list[dict[str, Any]]:
        pipeline.process_pending(
            RESERVATIONS,
            store,
            pg_conn,
            str(processed),
            load_mapping_tables(),
            files_per_chunk=files_per_chunk,
        )
        rows = fetch_bookings(pg_conn)
        assert (
            parquet_store.read_rows(str(processed), RESERVATIONS)
            .sort_by("id")
            .equals(parquet_store.dataset_rows(RESERVATIONS, rows).sort_by("id"))
        )
        return comparable(rows)

    in_chunks = process(2, tmp_path / "chunked")
    assert ledger.pending_files(pg_conn) == []
    pg_conn.execute("TRUNCATE bookings")
    pg_conn.execute("UPDATE raw_files SET processed_at = NULL")
    pg_conn.commit()
    at_once = process(100, tmp_path / "whole")

    assert without(in_chunks, "version") == without(at_once, "version")
    assert sorted((row["external_id"], row["status_original"]) for row in at_once) == [
        ("RSV-1", "check_in"),
        ("RSV-2", "confirmado"),
        ("RSV-3", "confirmado"),
    ]
    versions = {row["external_id"]: row["version"] for row in in_chunks}
    assert versions == {"RSV-1": 3, "RSV-2": 1, "RSV-3": 1}  # one version per chunk that changed it


@pytest.mark.both_engines
def test_a_nul_character_from_hostpms_does_not_block_its_batch(
    pg_conn: psycopg.Connection, tmp_path: Path, engine
) -> None:
    # JSON may carry \u0000, which PostgreSQL text cannot hold.
    record = reservation(reservation_id="RSV-\u0000-1", guest__name="Ana\u0000Silva")
    store = LocalObjectStore(tmp_path / "raw")
    location = store.put("hostpms/PT-LIS-001/polling/nul.json", page([record, reservation()]))
    ledger.record_landed_file(pg_conn, location, "PT-LIS-001", "polling", "reservations", 2, T0)
    pg_conn.commit()

    engine.process_pending(
        RESERVATIONS, store, pg_conn, str(tmp_path / "processed"), load_mapping_tables()
    )

    names = {row["external_id"]: row["guest_name"] for row in fetch_bookings(pg_conn).to_pylist()}
    assert names == {
        "RSV-\ufffd-1": "Ana\ufffdSilva",
        TR2_BOOKING["external_id"]: TR2_BOOKING["guest_name"],
    }
    assert ledger.pending_files(pg_conn) == []


def test_a_failing_chunk_keeps_what_earlier_chunks_committed(
    pg_url: str, pg_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalObjectStore(tmp_path / "raw")
    with database.connect(pg_url, pg_schema) as conn:
        for number in range(4):
            record = reservation(reservation_id=f"RSV-{number}", updated_at="2024-03-15T14:00:00Z")
            location = store.put(f"hostpms/PT-LIS-001/polling/page-{number}.json", page([record]))
            ledger.record_landed_file(
                conn,
                location,
                "PT-LIS-001",
                "polling",
                "reservations",
                1,
                T0 + timedelta(seconds=number),
            )
    real_upsert, calls = pipeline.entity_store.upsert, []

    def upsert_failing_second_time(conn, spec, bookings, **options):
        calls.append(bookings.num_rows)
        if len(calls) == 2:
            raise RuntimeError("crash while loading the second chunk")
        return real_upsert(conn, spec, bookings, **options)

    monkeypatch.setattr(pipeline.entity_store, "upsert", upsert_failing_second_time)
    # The crash leaves through the connection, which rolls back whatever was not committed.
    with pytest.raises(RuntimeError), database.connect(pg_url, pg_schema) as conn:
        pipeline.process_pending(
            RESERVATIONS,
            store,
            conn,
            str(tmp_path / "out"),
            load_mapping_tables(),
            files_per_chunk=2,
        )
    with database.connect(pg_url, pg_schema) as conn:  # a new session sees only what was committed
        assert sorted(fetch_bookings(conn)["external_id"].to_pylist()) == ["RSV-0", "RSV-1"]
        assert len(ledger.pending_files(conn)) == 2


@pytest.mark.parametrize("files, size", [(0, 200), (1, 200), (201, 200), (2000, 200), (5, 2)])
def test_chunks_cover_every_file_once_in_order_a_short_one_first(files: int, size: int) -> None:
    locations = [f"page-{number}.json" for number in range(files)]
    chunks = pipeline._chunks(locations, size)
    assert [location for chunk in chunks for location in chunk] == locations
    assert all(0 < len(chunk) <= size for chunk in chunks)
    assert not chunks or len(chunks[0]) == min(files, size // 4 or size)

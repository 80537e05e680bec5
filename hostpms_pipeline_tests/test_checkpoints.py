"""Sync checkpoints and the raw-file ledger, against a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from hostpms_pipeline.warehouse import checkpoints, ledger

T0 = datetime(2024, 3, 15, 14, 0, tzinfo=UTC)


def test_no_checkpoint_before_the_first_save(pg_conn: psycopg.Connection) -> None:
    assert checkpoints.get_checkpoint(pg_conn, "PT-LIS-001", "reservations") is None


def test_checkpoint_only_moves_forward(pg_conn: psycopg.Connection) -> None:
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "reservations", T0, None)
    checkpoints.save_checkpoint(
        pg_conn, "PT-LIS-001", "reservations", T0 - timedelta(days=1), "c-2"
    )
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "reservations", None, "c-3")

    saved = checkpoints.get_checkpoint(pg_conn, "PT-LIS-001", "reservations")
    assert saved is not None
    assert (saved.updated_since, saved.cursor) == (T0, "c-3")

    checkpoints.save_checkpoint(
        pg_conn, "PT-LIS-001", "reservations", T0 + timedelta(hours=1), None
    )
    saved = checkpoints.get_checkpoint(pg_conn, "PT-LIS-001", "reservations")
    assert saved is not None
    assert (saved.updated_since, saved.cursor) == (T0 + timedelta(hours=1), None)


def test_checkpoints_are_per_property_and_collection(pg_conn: psycopg.Connection) -> None:
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "reservations", T0, None)
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "guests", T0 + timedelta(days=1), None)

    reservations = checkpoints.get_checkpoint(pg_conn, "PT-LIS-001", "reservations")
    assert reservations is not None and reservations.updated_since == T0
    assert checkpoints.get_checkpoint(pg_conn, "ES-MAD-001", "reservations") is None


def test_last_sync_times_follow_the_latest_save(pg_conn: psycopg.Connection) -> None:
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "reservations", T0, None)
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "guests", T0, None)
    pg_conn.commit()
    first = checkpoints.last_sync_times(pg_conn, "reservations")
    pg_conn.commit()  # now() is the transaction's start: the next save needs a new one
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "reservations", T0, "c-1")

    again = checkpoints.last_sync_times(pg_conn, "reservations")

    assert set(first) == set(again) == {"PT-LIS-001"}
    assert again["PT-LIS-001"] > first["PT-LIS-001"]


def test_reset_lets_a_full_resync_start_over(pg_conn: psycopg.Connection) -> None:
    checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "reservations", T0, None)

    assert checkpoints.reset_checkpoint(pg_conn, "PT-LIS-001", "reservations") is True
    assert checkpoints.reset_checkpoint(pg_conn, "PT-LIS-001", "reservations") is False
    checkpoints.save_checkpoint(
        pg_conn, "PT-LIS-001", "reservations", T0 - timedelta(days=30), None
    )

    saved = checkpoints.get_checkpoint(pg_conn, "PT-LIS-001", "reservations")
    assert saved is not None and saved.updated_since == T0 - timedelta(days=30)


def land(conn: psycopg.Connection, location: str, landed_at: datetime, **overrides: object) -> bool:
    fields: dict = {
        "property_id": "PT-LIS-001",
        "kind": "polling",
        "collection": "reservations",
        "record_count": 3,
    } | overrides
    return ledger.record_landed_file(conn, location, landed_at=landed_at, **fields)


def test_ledger_lists_pending_files_in_landing_order(pg_conn: psycopg.Connection) -> None:
    land(pg_conn, "b.json", T0 + timedelta(seconds=2))
    land(pg_conn, "a.json", T0 + timedelta(seconds=1))
    land(pg_conn, "w.json", T0, kind="webhook")
    land(pg_conn, "m.json", T0, property_id="ES-MAD-001")

    assert ledger.pending_files(pg_conn) == ["m.json", "w.json", "a.json", "b.json"]
    assert ledger.pending_files(pg_conn, property_id="PT-LIS-001", kind="polling") == [
        "a.json",
        "b.json",
    ]
    assert ledger.pending_files(pg_conn, kind="webhook") == ["w.json"]


def test_a_record_budget_takes_the_oldest_files_and_at_least_one(
    pg_conn: psycopg.Connection,
) -> None:
    for second, (location, records) in enumerate(
        [("a.json", 300), ("b.json", 300), ("c.json", 300)]
    ):
        land(pg_conn, location, T0 + timedelta(seconds=second), record_count=records)

    assert ledger.pending_within_budget(pg_conn, 650) == (["a.json", "b.json"], 1)
    assert ledger.pending_within_budget(pg_conn, 600) == (["a.json", "b.json"], 1)
    assert ledger.pending_within_budget(pg_conn, 100) == (
        ["a.json"],
        2,
    )  # bigger than the budget
    assert ledger.pending_within_budget(pg_conn, None) == (["a.json", "b.json", "c.json"], 0)


def test_landing_the_same_file_twice_is_recorded_once(pg_conn: psycopg.Connection) -> None:
    assert land(pg_conn, "a.json", T0) is True
    assert land(pg_conn, "a.json", T0 + timedelta(seconds=5)) is False
    assert ledger.pending_files(pg_conn) == ["a.json"]


def test_processed_files_are_no_longer_pending(pg_conn: psycopg.Connection) -> None:
    for second, location in enumerate(["a.json", "b.json", "c.json"]):
        land(pg_conn, location, T0 + timedelta(seconds=second))

    assert ledger.mark_processed(pg_conn, ["a.json", "c.json"]) == 2
    assert ledger.mark_processed(pg_conn, ["a.json"]) == 0
    assert ledger.pending_files(pg_conn) == ["b.json"]


def test_ledger_rejects_an_unknown_kind(pg_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        land(pg_conn, "a.json", T0, kind="email")


def test_landing_record_and_checkpoint_commit_or_roll_back_together(
    pg_conn: psycopg.Connection,
) -> None:
    with pytest.raises(RuntimeError), pg_conn.transaction():
        land(pg_conn, "a.json", T0)
        checkpoints.save_checkpoint(pg_conn, "PT-LIS-001", "reservations", T0, "c-1")
        raise RuntimeError("crash before commit")

    assert ledger.pending_files(pg_conn) == []
    assert checkpoints.get_checkpoint(pg_conn, "PT-LIS-001", "reservations") is None

"""``hostpms sync`` killed with SIGKILL while polling, while loading and while exporting
Parquet, then run again to the end, leaves PostgreSQL equal to HostPMS (every record in
its latest state, no key twice) and Parquet equal to PostgreSQL.

Each kill point is found from outside the process, so it holds however the sync is built:
- polling: raw pages have landed while the simulator still answers slowly;
- loading: the sync's PostgreSQL session waits for a lock this test holds on the bookings
  table in SHARE mode (which lets reads through and stops any write), so it is killed
  in the middle of writing bookings;
- exporting Parquet: the first Parquet file of the run appears in the processed folder.
Between the kills, some records get newer states in the simulator, so the final state
must be the latest one, not merely one that was seen.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.simulator import RunningSimulator, SimulatorConfig
from hostpms_pipeline.warehouse import database, entity_store
from hostpms_pipeline_tests.fixtures.cli import hostpms_command, run_hostpms
from hostpms_pipeline_tests.fixtures.simulator import FAST_WEBHOOKS

PROPERTIES = ("PT-LIS-001",)
KILL_WAIT_SECONDS = 120  # for the kill point to come (Dagster starts slowly on a busy CI)
CHANGED_PER_COLLECTION = 5


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """One property, every entity; a frozen clock, so HostPMS changes only when told."""
    return SimulatorConfig(
        property_ids=PROPERTIES,
        reservations_per_property=400,
        rate_limit=100_000,
        rate_window_seconds=60.0,
        clock_speed=0.0,
        webhooks=FAST_WEBHOOKS,
    )


@pytest.fixture
def sync_env(cli_env: dict[str, str]) -> dict[str, str]:
    return {
        **cli_env,
        "HOSTPMS_PROPERTY_IDS": ",".join(PROPERTIES),
        "HOSTPMS_PAGE_LIMIT": "50",
        "HOSTPMS_RATE_LIMIT_PER_MINUTE": "100000",
    }


def start_sync(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        hostpms_command("sync"), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def kill_when(process: subprocess.Popen, log: Path, reached: Callable[[], bool], point: str):
    """SIGKILL the sync as soon as ``reached()``; fails if the sync ends before that."""
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while not reached():
        assert process.poll() is None, f"the sync ended before {point}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {point} within {KILL_WAIT_SECONDS} s"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL, f"{point}: {log.read_text()}"


def files_under(folder: Path, suffix: str) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in folder.rglob(f"*{suffix}") if path.is_file()}


def change_some_records(running: RunningSimulator) -> None:
    """Newer states of a few records of every collection (already served ones among them)."""
    simulator = running.simulator
    simulator.advance_clock(60)
    for property_id in PROPERTIES:
        for spec in ENTITIES:
            keys = simulator.dataset.timeline(property_id, spec.collection).latest_keys(
                simulator.clock.now()
            )
            simulator.change_records(property_id, spec.collection, keys[:CHANGED_PER_COLLECTION])


def latest_in_simulator(running: RunningSimulator, collection: str) -> set[tuple]:
    simulator = running.simulator
    now = simulator.clock.now()
    latest = set()
    for property_id in PROPERTIES:
        timeline = simulator.dataset.timeline(property_id, collection)
        for key in timeline.latest_keys(now):
            latest.add((property_id, key, timeline.current(key, now).updated_at))
    return latest


@pytest.mark.slow
def test_a_sync_killed_while_polling_loading_and_exporting_loses_nothing(
    sync_env, running_simulator, pg_url, pg_schema, tmp_path
):
    home = Path(sync_env["HOSTPMS_HOME"])
    raw, processed = home / "raw", home / "processed"
    simulator = running_simulator.simulator

    # 1. While polling: every reservations page answered slowly; killed once pages landed.
    simulator.faults.slow(0.3, count=1000, collection="reservations")
    log = tmp_path / "sync-1.log"
    process = start_sync(sync_env, log)
    kill_when(process, log, lambda: len(files_under(raw, ".json")) >= 3, "pages landing")
    simulator.faults.clear()
    change_some_records(running_simulator)

    # 2. While loading: the sync's write to bookings waits on this session's lock.
    log = tmp_path / "sync-2.log"
    with psycopg.connect(pg_url) as holder:
        holder.execute(
            sql.SQL("LOCK TABLE {}.bookings IN SHARE MODE").format(sql.Identifier(pg_schema))
        )

        def writing_bookings() -> bool:
            with psycopg.connect(pg_url, autocommit=True) as probe:
                return bool(
                    probe.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE %s = ANY(pg_blocking_pids(pid))",
                        (holder.info.backend_pid,),
                    ).fetchone()[0]
                )

        process = start_sync(sync_env, log)
        kill_when(process, log, writing_bookings, "a write to bookings")
        holder.rollback()  # the killed session's statement may now finish or roll back
    change_some_records(running_simulator)

    # 3. While exporting Parquet: killed when the run's first Parquet file appears.
    before = files_under(processed, ".parquet")
    log = tmp_path / "sync-3.log"
    process = start_sync(sync_env, log)
    kill_when(
        process,
        log,
        lambda: any(before.get(p) != m for p, m in files_under(processed, ".parquet").items()),
        "a Parquet file written",
    )

    # 4. A sync to the end.
    done, _ = run_hostpms("sync", env=sync_env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    with database.connect(pg_url, pg_schema) as conn:
        for spec in ENTITIES:
            stored = conn.execute(
                sql.SQL("SELECT hotel_id, external_id, source_updated_at FROM {}").format(
                    sql.Identifier(spec.table)
                )
            ).fetchall()
            expected = latest_in_simulator(running_simulator, spec.collection)
            assert expected, spec.collection
            # Every record, in its latest state, once.
            assert len(stored) == len(set(stored)) == len({row[:2] for row in stored})
            assert set(stored) == expected, spec.table
            ids = conn.execute(
                sql.SQL("SELECT count(DISTINCT id) = count(*) FROM {}").format(
                    sql.Identifier(spec.table)
                )
            ).fetchone()[0]
            assert ids, spec.table

            in_postgres = parquet_store.dataset_rows(spec, entity_store.fetch_rows(conn, spec))
            in_parquet = parquet_store.read_rows(str(processed), spec)
            assert in_parquet.num_rows == len(expected), spec.table
            assert in_parquet.sort_by("id").equals(in_postgres.sort_by("id")), spec.table

"""The fault-injection matrix: every row of the contract's error table, and crashes at each step.

Each case drives the simulator over loopback HTTP and the ETL into real PostgreSQL:
a run (each property synced, then every pending raw file processed) with the fault,
reruns until clean, the simulator's clock moved on, one more run. The final
PostgreSQL state (booking keys, versions, state hashes and the rejected records)
must equal a fault-free run's, and the simulator must never have refused a request
for the rate limit. The simulator's clock stands still between runs, so every
simulator built from ``MATRIX_CONFIG`` serves the same data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from psycopg import sql

from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.hostpms.client import (
    Credentials,
    FetchedPage,
    HostPMSClient,
    MalformedResponse,
    ServiceUnavailable,
    TransientServerError,
)
from hostpms_pipeline.hostpms.rate_limiter import PostgresRateLimiter, RateLimit
from hostpms_pipeline.ingest import polling
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.raw_layout import RAW_PREFIX
from hostpms_pipeline.lake.storage import LocalObjectStore, ObjectStore
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET
from hostpms_pipeline.simulator import (
    HostPMSSimulator,
    RunningSimulator,
    SimulatorConfig,
    run_in_background,
)
from hostpms_pipeline.warehouse import checkpoints, database, entity_store, ledger
from hostpms_pipeline_tests.fixtures.simulator import FAST_WEBHOOKS

FIRST, SECOND = PROPERTIES = ("PT-LIS-001", "ES-MAD-001")
ANCHOR = datetime(2026, 3, 1, tzinfo=UTC)
RATE_LIMIT, RATE_WINDOW = 40, 2.0
MATRIX_CONFIG = SimulatorConfig(
    property_ids=PROPERTIES,
    reservations_per_property=30,
    anomaly_rate=0.15,  # so that rejected records are part of the state compared
    anchor=ANCHOR,
    clock_start=ANCHOR,
    clock_speed=0.0,
    rate_limit=RATE_LIMIT,
    rate_window_seconds=RATE_WINDOW,
    webhooks=FAST_WEBHOOKS,
)
# A wide margin: in windows of 2 s, a request delayed by a busy CI machine must not
# push one window over its budget.
CLIENT_LIMIT = RateLimit(requests=RATE_LIMIT, window_seconds=RATE_WINDOW, safety_margin=0.25)
PAGE_LIMIT = 5
FILES_PER_CHUNK = 3  # several ETL chunks per run, so a crash can fall between two
CLIENT_TIMEOUT = 0.5
TIME_PASSES = timedelta(days=120)  # between the last two runs: many reservations change
FAULT_AFTER_PAGES = 2  # faults are armed once the first property has landed this many pages
TABLES = load_mapping_tables()


class Crash(Exception):
    """An injected crash."""


@dataclass(frozen=True)
class FinalState:
    bookings: list[dict[str, Any]]  # id, natural key, version, state hash
    rejected: set[tuple[Any, ...]]  # (hotel, external id, reason, detail), however often landed


@dataclass
class Environment:
    """One simulator, one PostgreSQL schema, one raw and one processed folder."""

    running: RunningSimulator
    connect: Callable[[], psycopg.Connection]
    raw: ObjectStore
    processed_url: str

    @property
    def simulator(self) -> HostPMSSimulator:
        return self.running.simulator

    def client(self) -> HostPMSClient:
        return HostPMSClient(
            self.running.base_url,
            Credentials(SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET),
            timeout=CLIENT_TIMEOUT,
            page_limit=PAGE_LIMIT,
            initial_backoff_seconds=0.05,
            max_backoff_seconds=0.2,
            limiter=PostgresRateLimiter(self.connect, CLIENT_LIMIT),
        )

    def run(
        self,
        *,
        raw: ObjectStore | None = None,
        progress: polling.Progress | None = None,
        processed_url: str | None = None,
    ) -> dict[str, type[Exception]]:
        """Sync every property (one's failure does not stop the next), then the ETL; what failed."""
        failures: dict[str, type[Exception]] = {}
        with self.client() as client:
            for property_id in PROPERTIES:
                try:
                    polling.sync_incremental(
                        client, raw or self.raw, self.connect, property_id, progress=progress
                    )
                except Exception as error:  # noqa: BLE001 - the outcome under test
                    failures[property_id] = type(error)
        try:
            with self.connect() as conn:
                target = processed_url or self.processed_url
                pipeline.process_pending(
                    RESERVATIONS, self.raw, conn, target, TABLES, files_per_chunk=FILES_PER_CHUNK
                )
        except Exception as error:  # noqa: BLE001 - the outcome under test
            failures["etl"] = type(error)
        return failures

    def finish(self) -> None:
        """Rerun until clean, let time pass at HostPMS, run once more."""
        self.simulator.faults.clear()
        assert self.run() == {}
        self.simulator.advance_clock(TIME_PASSES.total_seconds())
        assert self.run() == {}

    def state(self) -> FinalState:
        with self.connect() as conn:
            bookings = entity_store.stored_keys(conn, RESERVATIONS).to_pylist()
            rejected = set(
                conn.execute("SELECT hotel_id, external_id, reason, detail FROM rejected_records")
            )
        return FinalState(bookings, rejected)

    def landed_files(self, property_id: str) -> list[str]:
        return [info.key for info in self.raw.list(f"{RAW_PREFIX}/{property_id}/polling/")]

    def checkpoint(self, property_id: str) -> checkpoints.Checkpoint | None:
        with self.connect() as conn:
            return checkpoints.get_checkpoint(conn, property_id, "reservations")


@contextmanager
def environment(pg_url: str, schema: str, folder: Path) -> Iterator[Environment]:
    database.migrate(pg_url, schema)
    try:
        with run_in_background(HostPMSSimulator(MATRIX_CONFIG)) as running:
            yield Environment(
                running,
                partial(database.connect, pg_url, schema),
                LocalObjectStore(folder / "raw"),
                str(folder / "processed"),
            )
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def fresh_schema() -> str:
    return f"matrix_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def fault_free(pg_server_url, tmp_path_factory) -> FinalState:
    with environment(pg_server_url, fresh_schema(), tmp_path_factory.mktemp("fault_free")) as env:
        assert env.run() == {}
        env.finish()
        state = env.state()
    assert state.rejected and any(
        row["version"] > 1 for row in state.bookings
    )  # a meaningful baseline
    return state


@pytest.fixture
def env(pg_server_url, tmp_path) -> Iterator[Environment]:
    with environment(pg_server_url, fresh_schema(), tmp_path) as env:
        yield env


def assert_never_over_the_rate_limit(simulator: HostPMSSimulator) -> None:
    counts = simulator.state()["request_counts"]
    assert counts
    assert all(row["refused"] == 0 for row in counts), counts
    per_minute = RATE_LIMIT * 60 / RATE_WINDOW
    assert all(row["served"] <= per_minute for row in counts)


def after_pages(pages: int, action: Callable[[], None]) -> polling.Progress:
    """A progress callback that runs ``action`` once, when the ``pages``-th page has landed."""
    landed: list[FetchedPage] = []

    def progress(page: FetchedPage) -> None:
        landed.append(page)
        if len(landed) == pages:
            action()

    return progress


def arm(env: Environment, fault: Callable[[HostPMSSimulator], None]) -> polling.Progress:
    return after_pages(FAULT_AFTER_PAGES, lambda: fault(env.simulator))


# --- faults the client absorbs: the run succeeds as if nothing happened --------------

ABSORBED = {
    "429_with_retry_after": lambda sim: sim.faults.fail(429, count=2, retry_after=1),
    "429_without_retry_after": lambda sim: sim.faults.fail(429, count=2),
    "500_once": lambda sim: sim.faults.fail(500),
    "500_three_times": lambda sim: sim.faults.fail(500, count=3),
    "token_revoked_mid_sync": lambda sim: sim.revoke_tokens(),
    "slower_than_the_client_timeout": lambda sim: sim.faults.slow(CLIENT_TIMEOUT * 2),
    "dropped_connection": lambda sim: sim.faults.drop_connection(count=2),
}


@pytest.mark.parametrize("fault", ABSORBED.values(), ids=ABSORBED.keys())
def test_absorbed_fault(env, fault_free, fault):
    tokens_before = env.simulator.tokens.issued
    assert env.run(progress=arm(env, fault)) == {}
    assert env.simulator.state()["faults_pending"] == []  # the fault did fire
    if fault is ABSORBED["token_revoked_mid_sync"]:
        assert (
            env.simulator.tokens.issued == tokens_before + 2
        )  # the first token and its replacement
    env.finish()
    assert env.state() == fault_free
    assert_never_over_the_rate_limit(env.simulator)


# --- faults that stop one property's sync: it resumes on the next run ----------------

STOPPING = {
    "500_four_times": (lambda sim: sim.faults.fail(500, count=4), TransientServerError),
    "503": (lambda sim: sim.faults.fail(503, retry_after=5), ServiceUnavailable),
    "malformed_json": (lambda sim: sim.faults.malformed_body(), MalformedResponse),
}


@pytest.mark.parametrize(("fault", "error"), STOPPING.values(), ids=STOPPING.keys())
def test_fault_stopping_one_property(env, fault_free, fault, error):
    assert env.run(progress=arm(env, fault)) == {FIRST: error}
    # Only the pages before the fault landed, and the checkpoint points just after them.
    landed = env.landed_files(FIRST)
    assert len(landed) == FAULT_AFTER_PAGES
    assert all(isinstance(orjson.loads(env.raw.get(key))["data"], list) for key in landed)
    stopped = env.checkpoint(FIRST)
    assert stopped.cursor is not None and stopped.updated_since is None  # mid-pass, never completed
    assert env.checkpoint(SECOND).updated_since is not None  # the other property synced
    env.finish()
    assert env.state() == fault_free
    assert_never_over_the_rate_limit(env.simulator)


def test_records_changed_while_paging_are_not_missed(env, fault_free):
    env.simulator.faults.change_while_paging(
        after_page=FAULT_AFTER_PAGES, collection="reservations"
    )
    assert env.run() == {}
    touched = assert_bookings_hold_the_newest_versions(env)
    assert touched, "the records of the first pages changed while the pass went on"
    env.finish()
    assert_bookings_hold_the_newest_versions(env)
    assert env.state() == fault_free
    assert_never_over_the_rate_limit(env.simulator)


def assert_bookings_hold_the_newest_versions(env: Environment) -> list[str]:
    """Every booking is at the version HostPMS serves now; returns those that changed just now."""
    now = env.simulator.clock.now()
    with env.connect() as conn:
        stored = entity_store.fetch_rows(conn, RESERVATIONS).to_pylist()
    for booking in stored:
        timeline = env.simulator.dataset.timeline(booking["hotel_id"], "reservations")
        assert (
            booking["source_updated_at"] == timeline.current(booking["external_id"], now).updated_at
        )
    return [b["external_id"] for b in stored if b["source_updated_at"] == now]


# --- crashes at each step: the rerun ends where a run without the crash would --------


class StoreFailingOnce:
    """The raw store, with one write failing: a crash after the fetch, before the page landed."""

    def __init__(self, store: ObjectStore, failing_put: int):
        self._store = store
        self._puts = 0
        self._failing_put = failing_put

    def put(self, key: str, data: bytes) -> str:
        self._puts += 1
        if self._puts == self._failing_put:
            raise Crash("crashed before the page landed")
        return self._store.put(key, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_crash_after_fetch_before_landing(env, fault_free):
    failing = StoreFailingOnce(env.raw, failing_put=FAULT_AFTER_PAGES + 1)
    assert env.run(raw=failing) == {FIRST: Crash}
    # The pages before it landed; pages already handed to other writers may have too.
    assert (
        FAULT_AFTER_PAGES <= len(env.landed_files(FIRST)) < FAULT_AFTER_PAGES + polling.LAND_THREADS
    )
    env.finish()
    assert env.state() == fault_free
    assert_never_over_the_rate_limit(env.simulator)


def test_crash_after_landing_before_the_checkpoint(env, fault_free):
    def crash() -> None:
        raise Crash("crashed between landing and checkpoint")

    assert env.run(progress=after_pages(FAULT_AFTER_PAGES + 1, crash)) == {FIRST: Crash}
    landed_before_crash = env.landed_files(FIRST)
    assert len(landed_before_crash) == FAULT_AFTER_PAGES + 1
    with env.connect() as conn:  # the pages of the open group landed, never recorded in the ledger
        [recorded] = conn.execute(
            "SELECT count(*) FROM raw_files WHERE property_id = %s", (FIRST,)
        ).fetchone()
    assert recorded < len(landed_before_crash)
    env.finish()
    assert env.state() == fault_free
    assert_never_over_the_rate_limit(env.simulator)


def test_crash_inside_the_postgres_load(env, fault_free, monkeypatch):
    """The second chunk's load fails inside its transaction, after its upsert: nothing half-written stays."""
    original = ledger.mark_processed
    calls: list[int] = []

    def mark_processed_crashing_once(conn, locations):
        calls.append(1)
        if len(calls) == 2:
            raise Crash("crashed inside the load transaction")
        return original(conn, locations)

    monkeypatch.setattr(ledger, "mark_processed", mark_processed_crashing_once)
    assert env.run() == {"etl": Crash}
    with env.connect() as conn:
        assert (
            len(ledger.pending_files(conn)) > FILES_PER_CHUNK
        )  # the failed chunk and later ones wait
    env.finish()
    assert env.state() == fault_free
    assert_never_over_the_rate_limit(env.simulator)


def test_crash_in_the_parquet_export(env, fault_free, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the processed bucket should be")
    assert set(env.run(processed_url=str(blocked))) == {
        "etl"
    }  # PostgreSQL committed, Parquet failed
    env.finish()
    assert env.state() == fault_free
    with env.connect() as conn:
        in_postgres = entity_store.stored_keys(conn, RESERVATIONS)
    parquet = parquet_store.read_rows(env.processed_url, RESERVATIONS)
    assert pipeline.key_set(parquet) == pipeline.key_set(in_postgres)
    assert_never_over_the_rate_limit(env.simulator)


# --- full resync ----------------------------------------------------------------------


def test_full_resync_rereads_everything_and_changes_nothing(env, fault_free):
    assert env.run() == {}
    env.finish()
    files_before = len(env.landed_files(FIRST))
    assert polling.reset_for_full_resync(env.connect, FIRST)
    assert env.checkpoint(FIRST) is None
    assert env.run() == {}
    timeline = env.simulator.dataset.timeline(FIRST, "reservations")
    visible = len(timeline.latest_keys(env.simulator.clock.now()))
    assert len(env.landed_files(FIRST)) - files_before == -(-visible // PAGE_LIMIT)
    assert env.state() == fault_free
    assert env.checkpoint(FIRST).updated_since is not None

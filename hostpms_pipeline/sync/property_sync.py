"""One property's whole sync: every entity polled, mapped, loaded and exported, streamed.

Per entity, threads share the work: one fetches pages ahead, one lands them (writers
make each file durable before its group's ledger rows and checkpoint commit), one
prepares the committed files (read, map, deduplicate, check: at most a chunk at a
time, as soon as it is free) while one loads the previous chunk into PostgreSQL, so
later pages still arrive meanwhile. The touched Parquet days are written once, at the
end. Each chunk's load is one transaction that also marks its files processed, so a
crash at any moment leaves landed files pending (loaded by the next sync) and nothing
half-written; records fetched twice are absorbed by dedup and the newer-only upsert.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from hostpms_pipeline import progress
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.hostpms.client import FetchedPage, HostPMSClient
from hostpms_pipeline.ingest import polling, webhook_discovery
from hostpms_pipeline.sync.connections import Connections
from hostpms_pipeline.sync.stages import StageClock
from hostpms_pipeline.warehouse import ledger, outbox

if TYPE_CHECKING:
    import pyarrow as pa

    from hostpms_pipeline.engine.engines import LocalEngine
    from hostpms_pipeline.engine.mapping import MappingTables
    from hostpms_pipeline.engine.pipeline import MappedBatch
    from hostpms_pipeline.lake.parquet_delta import ParquetDelta


# The engine (HOSTPMS_ENGINE) and the mapping tables, each made on first call.
Steps = tuple[Callable[[], "LocalEngine"], Callable[[], "MappingTables"]]


class BlockingCheckFailed(Exception):
    """A batch broke a rule whose failure would put bad data in PostgreSQL: not loaded."""


@dataclass
class EntityOutcome:
    spec: EntitySpec
    polled: int = 0
    raw_records: int = 0
    rows: int = 0
    rejected: int = 0
    inserted: int = 0
    updated: int = 0
    files_loaded: int = 0
    files_deferred: int = 0  # an erasure ran while they were read: the next sync loads them
    parquet_days: int = 0
    warnings: dict[str, int] = field(default_factory=dict)  # failing non-blocking rules

    def summary(self) -> str:
        line = (
            f"{self.spec.collection}: {self.polled} polled, {self.raw_records} raw → "
            f"{self.rows} rows, {self.rejected} rejected, {self.inserted} new, "
            f"{self.updated} updated"
        )
        if self.warnings:
            line += " (warnings: " + ", ".join(f"{k} {v}" for k, v in self.warnings.items()) + ")"
        return line


def sync_property(
    connections: Connections,
    client: HostPMSClient,
    property_id: str,
    steps: Steps,
    clock: StageClock,
    *,
    full_resync: bool = False,
) -> list[EntityOutcome]:
    """Every entity of the property, one after the other; raises on the first failure
    (what was committed before it stays). ``steps`` (the engine and the mapping tables)
    are made once there is data to map."""
    return [
        _sync_entity(connections, client, property_id, spec, steps, clock, full_resync)
        for spec in ENTITIES
    ]


def _sync_entity(
    connections: Connections,
    client: HostPMSClient,
    property_id: str,
    spec: EntitySpec,
    steps: Steps,
    clock: StageClock,
    full_resync: bool,
) -> EntityOutcome:
    outcome = EntityOutcome(spec)
    connect = connections.connect
    with connect() as conn, conn.transaction():
        webhook_discovery.catch_up(connections.raw, conn, property_id, spec)
        waiting = ledger.pending_files(conn, property_id=property_id, collection=spec.collection)
    if full_resync:
        polling.reset_for_full_resync(connect, property_id, spec.collection)
    loader = _Loader(connections, property_id, spec, steps, clock, outcome)
    try:
        loader.submit(waiting)

        def committed(locations: list[str]) -> None:
            loader.raise_if_failed()  # a failed load stops the polling too
            loader.submit(locations)

        def landed(page: FetchedPage) -> None:
            progress.page_landed(property_id, spec.collection, page.record_count)

        with clock.stage("poll"):
            result = polling.sync_incremental(
                client,
                connections.raw,
                connect,
                property_id,
                spec.collection,
                progress=landed,
                committed=committed,
            )
        outcome.polled = result.records
        loader.finish()
    finally:
        loader.close()
    return outcome


class _Loader:
    """Maps and loads landed files, at most a chunk at a time, in the order they landed;
    then writes the touched Parquet days once. Starts (and imports the engine) only when
    there is a file to load: a sync that finds nothing new stays light."""

    def __init__(
        self,
        connections: Connections,
        property_id: str,
        spec: EntitySpec,
        steps: Steps,
        clock: StageClock,
        outcome: EntityOutcome,
    ):
        self._connections = connections
        self._property_id = property_id
        self._spec = spec
        self._engine, self._tables = steps
        self._clock = clock
        self._outcome = outcome
        # Files mapped and loaded at once: about HOSTPMS_MAX_RECORDS_PER_RUN records (memory).
        settings = connections.settings
        self._chunk_files = max(1, settings.max_records_per_run // settings.page_limit)
        self._inbox: queue.Queue[list[str] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._abandoned = threading.Event()
        self._resources = ExitStack()
        self._delta: ParquetDelta | None = None
        self._thread: threading.Thread | None = None

    def submit(self, locations: list[str]) -> None:
        if not locations:
            return
        if self._thread is None:
            from hostpms_pipeline.lake.parquet_delta import ParquetDelta

            self._delta = self._resources.enter_context(ParquetDelta(self._spec))
            self._thread = threading.Thread(
                target=self._run, name=f"load-{self._spec.table}", daemon=True
            )
            self._thread.start()
        self._inbox.put(locations)

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def finish(self) -> None:
        """Load what is left and write the queued Parquet days (this sync's, and any a
        stopped export left queued); raise what failed, if anything."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread.join()
            self.raise_if_failed()
        with self._connections.connect() as conn:
            queued = outbox.waiting(conn, self._spec.table)
            conn.commit()  # the export below is then a transaction of its own
            if not queued:
                return
            with self._clock.stage("parquet"):
                exported = self._engine().export_parquet(
                    conn, self._spec, self._connections.processed_url, delta=self._delta
                )
            self._outcome.parquet_days = exported.partitions

    def close(self) -> None:
        """Stop after the chunk under way, if still running (the rest stays pending)."""
        if self._thread is not None and self._thread.is_alive():
            self._abandoned.set()
            self._inbox.put(None)
            self._thread.join()
        self._resources.close()

    def _run(self) -> None:
        """Chunks are prepared (read, mapped, deduplicated, checked) one ahead in a thread of
        their own while this one loads the previous one into PostgreSQL."""
        from hostpms_pipeline.engine import pipeline

        batches = pipeline.prepared_one_ahead(self._landed_chunks(), self._prepare)
        try:
            with self._connections.connect() as conn:
                for batch in batches:
                    if self._abandoned.is_set():
                        return
                    self._load(conn, batch)
        except BaseException as error:  # noqa: BLE001 - raised in the polling thread
            self._abandoned.set()
            self._inbox.put(None)  # the preparer may be waiting for files: it stops too
            self._error = error
        finally:
            batches.close()

    def _landed_chunks(self) -> Iterator[list[str]]:
        """Whatever has landed, taken as soon as the preparer is free, at most a chunk at a
        time: fetching and loading overlap, and while loading lags the fetch, chunks grow
        to their bound by themselves (fewer, larger transactions)."""
        finished = False
        while not finished and not self._abandoned.is_set():
            waiting: list[str] = []
            for item in self._received():
                if item is None:
                    finished = True
                else:
                    waiting += item
            for first in range(0, len(waiting), self._chunk_files):
                if self._abandoned.is_set():
                    return
                yield waiting[first : first + self._chunk_files]

    def _received(self) -> list[list[str] | None]:
        """The next submission (waiting for it), with every one queued behind it."""
        items = [self._inbox.get()]
        while True:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                return items

    def _prepare(self, locations: list[str]) -> MappedBatch:
        from hostpms_pipeline.engine import pipeline, reading
        from hostpms_pipeline.gdpr import suppression
        from hostpms_pipeline.lake import raw_integrity

        spec, clock = self._spec, self._clock
        with self._connections.connect() as conn:
            epoch = suppression.epoch(conn)
            with clock.stage("read"):
                # Damaged files are set aside (committed at once) and the rest goes on.
                read = partial(reading.read_landed, spec)
                locations, records = raw_integrity.read_checked(
                    self._connections.raw, conn, locations, read
                )
            conn.commit()
        raw = pipeline.RawBatch(spec, locations, records, read_epoch=epoch)
        with clock.stage("map"):
            mapped = self._engine().map_batch(raw, self._tables())
        if mapped.rows.num_rows + mapped.rejected.num_rows != raw.record_count:
            raise BlockingCheckFailed(
                f"{spec.collection}: {raw.record_count} raw records became "
                f"{mapped.rows.num_rows} rows and {mapped.rejected.num_rows} rejects"
            )
        with clock.stage("deduplicate"):
            batch = self._engine().deduplicate(mapped)
        with clock.stage("checks"):
            self._check(batch.rows)
        return batch

    def _load(self, conn, batch: MappedBatch) -> None:
        outcome = self._outcome
        with self._clock.stage("upsert"):
            loaded = self._engine().load_postgres(conn, batch, self._delta)
        if loaded.deferred:
            outcome.files_deferred += len(batch.locations)
            return
        outcome.raw_records += batch.raw_count
        outcome.rows += batch.rows.num_rows
        outcome.rejected += batch.rejected.num_rows
        outcome.inserted += loaded.stats.inserted
        outcome.updated += loaded.stats.updated
        outcome.files_loaded += loaded.files_processed
        progress.rows_loaded(self._property_id, self._spec.table, batch.rows.num_rows)

    def _check(self, rows: pa.Table) -> None:
        from hostpms_pipeline.engine import quality

        for rule in quality.batch_rules(self._spec):
            result = rule.evaluate(rows)
            if result.passed:
                continue
            if rule.blocking:
                raise BlockingCheckFailed(
                    f"{self._spec.collection}: check {rule.name} failed ({rule.description})"
                )
            warnings = self._outcome.warnings
            warnings[rule.name] = warnings.get(rule.name, 0) + result.failing

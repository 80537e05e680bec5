"""The ETL steps behind the assets: raw files → mapped → deduplicated → PostgreSQL and Parquet.

Every step takes the entity's spec and names no entity. Assets, the ``hostpms``
command and the benchmarks all call these, so what is measured is what runs.
Work is columnar (Arrow) from the raw JSON onwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import psycopg
import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.engine import memory, quality, reading, transform
from hostpms_pipeline.engine.mapping import MappingTables
from hostpms_pipeline.entities.schema import NATURAL_KEY, REJECTED_SCHEMA, DayPartition, row_schema
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.gdpr import suppression
from hostpms_pipeline.lake import parquet_store, raw_integrity
from hostpms_pipeline.lake.parquet_delta import ParquetDelta
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.warehouse import entity_store, ledger, outbox

READ_THREADS = 8  # object-store reads are I/O bound (S3 round trips)
C = TypeVar("C")
P = TypeVar("P")
EXPORT_ROWS_PER_GROUP = 100_000  # bounds the Parquet export's memory (~150 MB of bookings)


@dataclass
class RawBatch:
    """Landed raw files of one entity not yet processed, read into one Arrow table."""

    spec: EntitySpec
    locations: list[str]
    records: pa.Table
    left_pending: int = 0  # files left for a later run (over the per-run record budget)
    # The GDPR erasure epoch when the files were read: a load commits only if it has not
    # moved since (an erasure redacted the raw store meanwhile; docs/gdpr.md).
    read_epoch: int | None = None

    @property
    def record_count(self) -> int:
        return self.records.num_rows


@dataclass
class MappedBatch:
    spec: EntitySpec
    locations: list[str]
    raw_count: int
    rows: pa.Table
    rejected: pa.Table
    read_epoch: int | None = None

    def unknown_values(self) -> dict[str, dict[str, int]]:
        """Per mapped field, how often each unmapped original value occurred."""
        return quality.mapped_values_known(self.spec, self.rows).metadata["unknown_values"]

    def rejects_by_reason(self) -> dict[str, int]:
        counts = pc.value_counts(self.rejected["reason"]) if self.rejected.num_rows else []
        return {item["values"].as_py(): item["counts"].as_py() for item in counts}


@dataclass
class LoadResult:
    stats: entity_store.UpsertStats
    rejected_written: int
    files_processed: int
    touched_partitions: set[DayPartition] = field(default_factory=set)
    deferred: bool = False  # an erasure ran since the files were read: they stay pending


def read_pending(
    spec: EntitySpec,
    store: ObjectStore,
    conn: psycopg.Connection,
    property_id: str | None = None,
    max_records: int | None = None,
) -> RawBatch:
    """Pending raw files of the entity, the oldest first and about ``max_records`` records
    at most, so one run's memory stays bounded however many files wait."""
    epoch = suppression.epoch(conn)
    locations, left = ledger.pending_within_budget(
        conn, max_records, property_id=property_id, collection=spec.collection
    )
    # Damaged files are set aside (quarantined) instead of failing the batch.
    read = partial(reading.read_landed, spec)
    locations, records = raw_integrity.read_checked(store, conn, locations, read)
    batch = RawBatch(spec, locations, records)
    batch.left_pending = left
    batch.read_epoch = epoch
    return batch


def read_files(spec: EntitySpec, store: ObjectStore, locations: list[str]) -> RawBatch:
    with ThreadPoolExecutor(READ_THREADS) as pool:
        contents = list(pool.map(store.get_location, locations))
    records = reading.read_landed(spec, zip(locations, contents, strict=True))
    return RawBatch(spec, locations, records)


def empty_batch(spec: EntitySpec) -> MappedBatch:
    return MappedBatch(spec, [], 0, row_schema(spec).empty_table(), REJECTED_SCHEMA.empty_table())


def map_batch(
    raw: RawBatch, tables: MappingTables, synced_at: datetime | None = None
) -> MappedBatch:
    moment = synced_at or datetime.now(UTC)
    rows, rejected = transform.to_rows(raw.spec, raw.records, tables, moment)
    return MappedBatch(raw.spec, raw.locations, raw.record_count, rows, rejected, raw.read_epoch)


def deduplicate(batch: MappedBatch) -> MappedBatch:
    return replace(batch, rows=transform.deduplicate(batch.rows))


def load_postgres(
    conn: psycopg.Connection, batch: MappedBatch, delta: ParquetDelta | None = None
) -> LoadResult:
    """One transaction: upsert the rows, keep rejects, mark the raw files processed.

    A failure anywhere leaves none of it written, and the files stay pending for
    the next run. With a ``delta``, the rows as stored are kept there for the export.
    """
    spec = batch.spec
    with conn.transaction():
        if batch.read_epoch is not None:
            entity_store.lock_properties(conn, spec, pc.unique(batch.rows["hotel_id"]).to_pylist())
            if suppression.epoch(conn) != batch.read_epoch:
                return LoadResult(_NOTHING, 0, 0, deferred=True)
        stats = entity_store.upsert(conn, spec, batch.rows, keep_written=delta is not None)
        rejected = entity_store.insert_rejected(conn, batch.rejected)
        ledger.mark_processed(conn, batch.locations)
        queued_by = delta.token if delta is not None else None
        outbox.enqueue(conn, spec.table, stats.touched_partitions, queued_by)
    if delta is not None:
        delta.add(stats)
        stats = replace(stats, written=None)  # the delta holds them now, on disk
    return LoadResult(stats, rejected, len(batch.locations), set(stats.touched_partitions))


_NOTHING = entity_store.UpsertStats(0, 0, 0, 0, frozenset())


@dataclass
class ExportResult:
    partitions: int
    rows: int
    merged: int = 0  # partitions merged from the run's own rows instead of read back


def export_parquet(
    conn: psycopg.Connection,
    spec: EntitySpec,
    processed_url: str,
    rows_per_group: int = EXPORT_ROWS_PER_GROUP,
    delta: ParquetDelta | None = None,
) -> ExportResult:
    """Bring every queued day partition up to date, so Parquet equals PostgreSQL.

    A day is rewritten from PostgreSQL, or, when this run's ``delta`` may vouch for
    it (see ``parquet_delta``), merged from the rows the run kept. Days are handled
    a group at a time (about ``rows_per_group`` rows), so memory stays bounded
    however much a run touched. The queue is emptied only if every group was
    written; otherwise the next export (of any run) retries them.
    """
    with conn.transaction():
        taken = outbox.take(conn, spec.table)
        if not taken:
            return ExportResult(0, 0)
        memory.release_free_memory()  # the loads' freed memory, so the export's peak is its own
        merged = delta.mergeable(taken) if delta is not None else set()
        rebuilt = [day for day in taken if day not in merged]
        written = 0
        counts = entity_store.rows_per_day(conn, spec, rebuilt) if rebuilt else {}
        for group in _day_groups(counts, rebuilt, rows_per_group):
            rows = entity_store.fetch_rows(conn, spec, partitions=group)
            written += parquet_store.replace_partitions(processed_url, spec, rows, group)
        if delta is not None and merged:
            counts = _sum_counts(
                parquet_store.partition_row_counts(processed_url, spec, merged),
                delta.rows_per_day(merged),
            )
            for group in _day_groups(counts, list(merged), rows_per_group):
                written += parquet_store.merge_partitions(
                    processed_url, spec, delta.rows_for(group), group
                )
    return ExportResult(len(taken), written, len(merged))


def _sum_counts(*counts: dict[DayPartition, int]) -> dict[DayPartition, int]:
    return {day: sum(count.get(day, 0) for count in counts) for day in counts[0]}


def _day_groups(
    counts: dict[DayPartition, int], partitions: list[DayPartition], rows_per_group: int
) -> Iterator[list[DayPartition]]:
    """Consecutive days packed into groups of at most ``rows_per_group`` rows (a bigger day alone)."""
    group: list[DayPartition] = []
    size = 0
    for day in sorted(partitions, key=lambda day: day or (0, 0, 0)):
        rows = counts.get(day, 0)  # a day with no rows left: its partition is removed
        if group and size + rows > rows_per_group:
            yield group
            group, size = [], 0
        group.append(day)
        size += rows
    if group:
        yield group


def process_pending(
    spec: EntitySpec,
    store: ObjectStore,
    conn: psycopg.Connection,
    processed_url: str,
    tables: MappingTables,
    *,
    property_id: str | None = None,
    files_per_chunk: int = 200,
    stage_seconds: dict[str, float] | None = None,
) -> list[LoadResult]:
    """Every pending raw file of the entity through map, dedup and PostgreSQL, a chunk of files
    at a time.

    Memory stays bounded by the chunk, however many files are pending: one chunk
    is prepared (read, mapped, deduplicated) in a thread while the previous one
    loads, so Arrow's work overlaps PostgreSQL's. Each chunk commits on its own,
    so a failure keeps what earlier chunks loaded and leaves the rest pending. The
    touched Parquet partitions are rewritten once at the end. ``stage_seconds``,
    if given, accumulates the time spent in each stage (stages overlap).
    """
    timings = stage_seconds if stage_seconds is not None else {}

    @contextmanager
    def stage(name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - began

    def prepare(chunk: list[str]) -> MappedBatch:
        with stage("read"):
            raw = read_files(spec, store, chunk)
            raw.read_epoch = epoch
        with stage("map"):
            mapped = map_batch(raw, tables)
        with stage("deduplicate"):
            return deduplicate(mapped)

    with conn.transaction():  # committed now, so each chunk's load below commits on its own
        epoch = suppression.epoch(conn)
        locations = ledger.pending_files(conn, property_id=property_id, collection=spec.collection)
    chunks = _chunks(locations, files_per_chunk)
    results = []
    with ParquetDelta(spec) as delta:
        for batch in prepared_one_ahead(iter(chunks), prepare):
            with stage("postgres"):
                results.append(load_postgres(conn, batch, delta))
        with stage("parquet"):
            export_parquet(conn, spec, processed_url, delta=delta)
    return results


def prepared_one_ahead(chunks: Iterator[C], prepare: Callable[[C], P]) -> Iterator[P]:
    """Each chunk prepared in a thread, the next one taken and prepared while the caller
    loads this one: Arrow's work overlaps PostgreSQL's. ``chunks`` is consumed in that
    thread, so it may block until more work comes."""
    end = object()

    def take_and_prepare() -> P | object:
        chunk = next(chunks, end)
        return end if chunk is end else prepare(chunk)  # type: ignore[arg-type]

    preparer = ThreadPoolExecutor(1, thread_name_prefix="prepare")
    try:
        upcoming = preparer.submit(take_and_prepare)
        while (batch := upcoming.result()) is not end:
            upcoming = preparer.submit(take_and_prepare)
            yield batch  # type: ignore[misc]
    finally:  # also when loading failed: the chunk being prepared is abandoned
        preparer.shutdown(cancel_futures=True)


def _chunks(locations: list[str], size: int) -> list[list[str]]:
    """Chunks of ``size`` files after a quarter-size first one: loading starts sooner,
    while the next chunk is prepared."""
    first = size // 4 or size
    starts = [0, *range(first, len(locations), size)]
    return [
        locations[start : start + (first if start == 0 else size)]
        for start in starts
        if start < len(locations)
    ]


def key_set(table: pa.Table) -> set[tuple[str, str, str]]:
    columns = [table[name].to_pylist() for name in NATURAL_KEY]
    return set(zip(*columns, strict=True))

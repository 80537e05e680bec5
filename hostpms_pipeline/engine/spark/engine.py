"""The Spark engine: map, reject and deduplicate on Spark; load through the local engine's upsert.

Work is spread as the local engine's own Arrow functions run per slice in
``mapInArrow`` (``spark/tasks.py``): mapping and reject rules, identifiers
(python-stdnum, phonenumbers) and digests stay one copy, and Spark does the
cross-record step, the shuffle that brings every state of an id to one task,
where ``transform.deduplicate`` keeps the newest. Slices pass between steps as
Arrow files (``spark/staging.py``), never through Spark's types.

PostgreSQL is loaded from the driver, a deduplicated partition at a time, all in
one transaction through ``pipeline.load_postgres``: the same staging tables,
newer-only rule, version bump, advisory locks (taken for every property of the
batch up front, in key order), rejects, ledger and outbox as the local engine.
That load is the serial part of a run (docs/spark.md). Parquet is then
brought up to date from the outbox by the same export, so both engines can take
turns on one database and one processed bucket.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import psycopg
import pyarrow as pa

from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import MappingTables
from hostpms_pipeline.engine.spark import staging, tasks
from hostpms_pipeline.entities.schema import REJECTED_SCHEMA, row_schema
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.gdpr import suppression
from hostpms_pipeline.lake.parquet_delta import ParquetDelta
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.warehouse import entity_store, ledger

RECORDS_PER_TASK = 50_000  # raw records a map task handles at once (~250 MB of Arrow)
FILES_PER_TASK = 100  # landed files a map task reads at once
ROWS_PER_PARTITION = 250_000  # rows deduplicated, then loaded, as one slice


class SparkBatch(pipeline.MappedBatch):
    """A mapped batch whose rows lie in staged Arrow files, read on the driver only when asked.

    A ``MappedBatch`` to the assets that hand it on (and to Dagster's type check).
    """

    def __init__(
        self,
        spec: EntitySpec,
        locations: list[str],
        raw_count: int,
        folder: str | None,  # the run's staging folder (None: nothing was staged)
        *,
        rows_files: list[str] | None = None,
        rejected_files: list[str] | None = None,
        row_count: int = 0,
        unknown: dict[str, dict[str, int]] | None = None,
        hotel_ids: frozenset[str] = frozenset(),
        read_epoch: int | None = None,
    ) -> None:
        self.spec = spec
        self.locations = locations
        self.raw_count = raw_count
        self.folder = folder
        self.rows_files = rows_files or []
        self.rejected_files = rejected_files or []
        self.row_count = row_count
        self.unknown = unknown or {}
        self.hotel_ids = hotel_ids
        self.read_epoch = read_epoch

    def __repr__(self) -> str:
        return f"SparkBatch({self.spec.collection}, {self.row_count} rows, {self.folder})"

    def but(self, **changes: Any) -> SparkBatch:
        """A copy with ``changes`` (rows not yet read)."""
        fields = {
            name: getattr(self, name)
            for name in (
                "rows_files", "rejected_files", "row_count", "unknown", "hotel_ids", "read_epoch"
            )
        }  # fmt: skip
        fields.update(changes)
        spec = fields.pop("spec", self.spec)
        locations = fields.pop("locations", self.locations)
        raw_count = fields.pop("raw_count", self.raw_count)
        folder = fields.pop("folder", self.folder)
        return SparkBatch(spec, locations, raw_count, folder, **fields)

    @cached_property
    def rows(self) -> pa.Table:  # type: ignore[override]
        return self._read(self.rows_files, row_schema(self.spec))

    @cached_property
    def rejected(self) -> pa.Table:  # type: ignore[override]
        return self._read(self.rejected_files, REJECTED_SCHEMA)

    def _read(self, names: list[str], schema: pa.Schema) -> pa.Table:
        return staging.read(self.folder, names, schema) if self.folder else schema.empty_table()

    def unknown_values(self) -> dict[str, dict[str, int]]:
        return self.unknown

    def rejects_by_reason(self) -> dict[str, int]:
        return dict(Counter(self.rejected["reason"].to_pylist()))

    def discard(self) -> None:
        """Delete the staged files (rows already read stay readable)."""
        if self.folder:
            staging.remove(self.folder)
            self.folder = None


class _Deferred(Exception):
    """An erasure ran since the batch was read: undo every slice loaded so far."""


class SparkEngine:
    name = "spark"

    def __init__(self, session: Any, staging_url: str) -> None:
        self.session = session
        self.staging_url = staging_url

    # --- the steps the assets run ------------------------------------------------------

    def map_batch(
        self, raw: pipeline.RawBatch, tables: MappingTables, synced_at: datetime | None = None
    ) -> SparkBatch:
        """Records the driver read (integrity-checked, within the run's budget), mapped on Spark."""
        if not raw.record_count:
            return SparkBatch(raw.spec, raw.locations, 0, None, read_epoch=raw.read_epoch)
        folder = staging.run_folder(self.staging_url)
        records = raw.records
        work = [
            {
                "records_file": staging.write(
                    folder, "records", records.slice(start, RECORDS_PER_TASK)
                )
            }
            for start in range(0, records.num_rows, RECORDS_PER_TASK)
        ]
        batch = self._map(raw.spec, work, tables, synced_at, None, folder)
        return batch.but(locations=raw.locations, read_epoch=raw.read_epoch)

    def deduplicate(self, batch: SparkBatch) -> SparkBatch:
        """One row per id, the newest state: Spark brings each id's rows to one task."""
        if batch.folder is None or not batch.row_count:
            return batch.but(rows_files=[], row_count=0)
        spec, folder = batch.spec, batch.folder
        shuffled = pa.schema([f.with_nullable(True) for f in row_schema(spec)])
        files = self._frame([(name,) for name in batch.rows_files], "rows_file string")
        rows = files.mapInArrow(
            tasks.read_rows_task(spec, folder, shuffled), _spark_schema(shuffled)
        )
        partitions = max(1, math.ceil(batch.row_count / ROWS_PER_PARTITION))
        kept = rows.repartition(partitions, "id").mapInArrow(
            tasks.deduplicate_task(spec, folder), _spark_schema(tasks.DEDUP_MANIFEST)
        )
        manifest = sorted(kept.collect(), key=lambda row: row["first_id"])
        hotels = {hotel for row in manifest for hotel in json.loads(row["hotel_ids"])}
        return batch.but(
            rows_files=[row["rows_file"] for row in manifest],
            row_count=sum(row["row_count"] for row in manifest),
            hotel_ids=frozenset(hotels),
        )

    def load_postgres(
        self, conn: psycopg.Connection, batch: SparkBatch, delta: ParquetDelta | None = None
    ) -> pipeline.LoadResult:
        """Every deduplicated slice through ``pipeline.load_postgres``, in one transaction."""
        if not isinstance(batch, SparkBatch):  # an empty batch (nothing mapped in this run)
            return pipeline.load_postgres(conn, batch, delta)
        spec = batch.spec
        slices: list[str | None] = list(batch.rows_files) or [None]
        results = []
        try:
            with conn.transaction():
                # Every property's lock first, in key order, as one upsert takes them.
                entity_store.lock_properties(conn, spec, batch.hotel_ids)
                for index, name in enumerate(slices):
                    rows = batch._read([name], row_schema(spec)) if name else None
                    piece = pipeline.MappedBatch(
                        spec,
                        batch.locations if index == len(slices) - 1 else [],
                        0,
                        rows if rows is not None else row_schema(spec).empty_table(),
                        batch.rejected if index == 0 else REJECTED_SCHEMA.empty_table(),
                        batch.read_epoch,
                    )
                    result = pipeline.load_postgres(conn, piece, delta)
                    if result.deferred:
                        raise _Deferred
                    results.append(result)
        except _Deferred:
            batch.discard()
            return pipeline.LoadResult(_NOTHING, 0, 0, deferred=True)
        batch.discard()
        return _combined(results)

    def export_parquet(
        self,
        conn: psycopg.Connection,
        spec: EntitySpec,
        processed_url: str,
        delta: ParquetDelta | None = None,
    ) -> pipeline.ExportResult:
        return pipeline.export_parquet(conn, spec, processed_url, delta=delta)

    # --- a whole backlog at once (CLI, benchmarks, Glue) -----------------------------------

    def process_pending(
        self,
        spec: EntitySpec,
        store: ObjectStore,
        conn: psycopg.Connection,
        processed_url: str,
        tables: MappingTables,
        *,
        property_id: str | None = None,
        stage_seconds: dict[str, float] | None = None,
        **_: Any,
    ) -> list[pipeline.LoadResult]:
        """Every pending landed file of the entity: executors read them, then as the assets do."""
        with conn.transaction():
            epoch = suppression.epoch(conn)
            locations = ledger.pending_files(
                conn, property_id=property_id, collection=spec.collection
            )
        return [
            self.process_files(
                spec, store.url, locations, conn, processed_url, tables, epoch, stage_seconds
            )
        ]

    def process_files(
        self,
        spec: EntitySpec,
        raw_url: str,
        locations: list[str],
        conn: psycopg.Connection,
        processed_url: str,
        tables: MappingTables,
        read_epoch: int | None = None,
        stage_seconds: dict[str, float] | None = None,
    ) -> pipeline.LoadResult:
        """Landed files (read by the executors) into PostgreSQL and Parquet."""
        timings = stage_seconds if stage_seconds is not None else {}
        clock = _Clock(timings)
        if locations:
            folder = staging.run_folder(self.staging_url)
            work = [
                {"files": locations[start : start + FILES_PER_TASK]}
                for start in range(0, len(locations), FILES_PER_TASK)
            ]
            with clock("map"):
                mapped = self._map(spec, work, tables, None, raw_url, folder)
            mapped = mapped.but(locations=locations, read_epoch=read_epoch)
            with clock("deduplicate"):
                batch = self.deduplicate(mapped)
        else:
            batch = SparkBatch(spec, [], 0, None, read_epoch=read_epoch)
        with ParquetDelta(spec) as delta:
            with clock("postgres"):
                result = self.load_postgres(conn, batch, delta)
            with clock("parquet"):
                self.export_parquet(conn, spec, processed_url, delta=delta)
        return result

    # --- Spark plumbing --------------------------------------------------------------------

    def _frame(self, rows: list[tuple], schema: str) -> Any:
        """A small driver-side list as a DataFrame, spread over the default parallelism."""
        return self.session.createDataFrame(rows, schema)

    def _map(
        self,
        spec: EntitySpec,
        work: list[dict],
        tables: MappingTables,
        synced_at: datetime | None,
        raw_url: str | None,
        folder: str,
    ) -> SparkBatch:
        moment = (synced_at or datetime.now(UTC)).astimezone(UTC)
        units = self._frame([(json.dumps(unit),) for unit in work], "work string")
        task = tasks.map_task(spec, tables, moment, raw_url, folder)
        manifest = units.mapInArrow(task, _spark_schema(tasks.MAP_MANIFEST)).collect()
        unknown: dict[str, Counter] = {}
        for row in manifest:
            for column, counts in json.loads(row["unknown_values"]).items():
                unknown.setdefault(column, Counter()).update(counts)
        return SparkBatch(
            spec,
            [],
            sum(row["raw_count"] for row in manifest),
            folder,
            rows_files=[row["rows_file"] for row in manifest],
            rejected_files=[row["rejected_file"] for row in manifest],
            row_count=sum(row["row_count"] for row in manifest),
            unknown={column: dict(counts) for column, counts in unknown.items()},
        )


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=False)


_NOTHING = entity_store.UpsertStats(0, 0, 0, 0, frozenset())


def _combined(results: list[pipeline.LoadResult]) -> pipeline.LoadResult:
    stats = [result.stats for result in results]
    touched = frozenset().union(*(s.touched_partitions for s in stats))
    total = entity_store.UpsertStats(
        inserted=sum(s.inserted for s in stats),
        updated=sum(s.updated for s in stats),
        unchanged=sum(s.unchanged for s in stats),
        stale=sum(s.stale for s in stats),
        touched_partitions=touched,
        moved_from=frozenset().union(*(s.moved_from for s in stats)),
    )
    return pipeline.LoadResult(
        total,
        sum(result.rejected_written for result in results),
        sum(result.files_processed for result in results),
        set(touched),
    )


class _Clock:
    """Seconds spent per stage, added to ``timings``."""

    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, name: str):
        import time
        from contextlib import contextmanager

        @contextmanager
        def stage():
            began = time.perf_counter()
            try:
                yield
            finally:
                self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - began

        return stage()

"""The rows one run wrote to an entity's table, kept so its Parquet export need not read them back.

They are kept as the dataset holds them (personal columns replaced by ``guest_key``),
so no personal data lands in the local spill files either. (Hashing the keys there,
beside the loads, rather than in the export shortens the export by 2 s on a 1M first
load but not the sync: the CPU is busy either way.)

Rewriting a day partition from PostgreSQL costs a scan and a full transfer of its
rows; a run that keeps what each upsert stored (spilled to local Arrow IPC files
sorted by day, so memory stays bounded: the export maps them and takes its days
as zero-copy slices) can instead merge those rows into the day files. That is exact only
when nobody else changed those days in between, so the export merges a day only if

- this run alone queued it: the outbox names the writer, and every write queues
  the old and the new day of each row it changes, so a day another run changed
  (or that a run which died before exporting left queued) is rebuilt from
  PostgreSQL; a day another export took first was rebuilt by it, this run's rows
  included (they were committed before their day was queued);
- no row left it for another day in this run (its old row must go: rebuilt).

Merging keeps, per id, the newer ``source_updated_at`` of the file's row and the
run's row, the rule PostgreSQL itself applies.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Collection, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.entities.schema import (
    DayPartition,
    day_partition,
    day_runs,
    parquet_schema,
    partition_days,
)
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.warehouse.entity_store import UpsertStats

# Where each day's rows lie in a spill file: (first row, row count).
DayRanges = dict[DayPartition, tuple[int, int]]


class ParquetDelta:
    """Spilled copies of the rows a run's upserts stored in one entity's table, by partition day.

    The run's load step keeps one for each entity it loads and hands it to the
    export in the same step, so it never outlives the run.
    """

    def __init__(self, spec: EntitySpec) -> None:
        self.spec = spec
        self.token = uuid.uuid4().hex  # names this run in the Parquet outbox
        self._folder = tempfile.TemporaryDirectory(prefix="hostpms-delta-")
        self._rows_per_day: dict[DayPartition, int] = {}
        self._moved_from: set[DayPartition] = set()
        # Spilling runs beside the next chunk's load; the export waits for it.
        self._spiller = ThreadPoolExecutor(1, thread_name_prefix="parquet-delta")
        self._spills: list[Future[tuple[str, DayRanges]]] = []

    def __enter__(self) -> ParquetDelta:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spiller.shutdown(cancel_futures=True)
        self._folder.cleanup()

    def add(self, stats: UpsertStats) -> None:
        """Keep what one committed upsert (``keep_written=True``) stored."""
        if stats.written is None:
            raise ValueError("the upsert kept no copy of its rows (keep_written=False)")
        self._moved_from |= stats.moved_from
        if not stats.written.num_rows:
            return
        days = partition_days(self.spec, stats.written)
        path = f"{self._folder.name}/{len(self._spills)}.arrow"
        self._spills.append(self._spiller.submit(_spill, self.spec, stats.written, days, path))
        for item in pc.value_counts(days):
            key = day_partition(item["values"].as_py())
            self._rows_per_day[key] = self._rows_per_day.get(key, 0) + item["counts"].as_py()

    def mergeable(self, taken: dict[DayPartition, set[str | None]]) -> set[DayPartition]:
        """The taken days this run may merge rather than rebuild (see the module's rules)."""
        return {
            day
            for day, writers in taken.items()
            if writers == {self.token} and day not in self._moved_from and day in self._rows_per_day
        }

    def rows_per_day(self, days: Iterable[DayPartition]) -> dict[DayPartition, int]:
        return {day: self._rows_per_day.get(day, 0) for day in days}

    def rows_for(self, days: Collection[DayPartition]) -> pa.Table:
        """The kept rows of these days as the dataset holds them (a row written twice
        appears twice)."""
        slices = []
        for spill in self._spills:
            path, ranges = spill.result()  # raises what the spill raised
            if wanted := [ranges[day] for day in days if day in ranges]:
                # Memory-mapped: only the pages of the wanted days are read.
                rows = pa.ipc.open_file(pa.memory_map(path)).read_all()
                slices += [rows.slice(first, count) for first, count in wanted]
        return pa.concat_tables(slices) if slices else parquet_schema(self.spec).empty_table()


def _spill(spec: EntitySpec, rows: pa.Table, days: pa.Array, path: str) -> tuple[str, DayRanges]:
    """Rows as the dataset holds them, sorted by day, into an uncompressed Arrow IPC file
    (written and read once, locally)."""
    rows = parquet_store.dataset_rows(spec, rows)
    order = pc.sort_indices(days)
    with pa.ipc.new_file(path, rows.schema) as writer:
        writer.write_table(rows.take(order))
    return path, {day: (first, count) for day, first, count in day_runs(days.take(order))}

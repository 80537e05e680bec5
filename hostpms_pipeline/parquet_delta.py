"""The rows one run wrote to PostgreSQL, kept so its Parquet export need not read them back.

Rewriting a day partition from PostgreSQL costs a scan and a full transfer of its
rows; a run that keeps what each upsert stored (spilled to local Parquet, so memory
stays bounded) can instead merge those rows into the day files. That is exact only
when nobody else changed those days in between, so the export merges a day only if

- this run alone queued it: the outbox names the writer, and every write queues
  the old and the new day of each row it changes, so a day another run changed
  (or that a run which died before exporting left queued) is rebuilt from
  PostgreSQL; a day another export took first was rebuilt by it, this run's rows
  included (they were committed before their day was queued);
- no booking left it for another day in this run (its old row must go: rebuilt).

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
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from hostpms_pipeline import booking_store, parquet_store
from hostpms_pipeline.booking_schema import (
    BOOKING_SCHEMA,
    DayPartition,
    day_partition,
    partition_dates,
)

_DAY = "__day"
# Deltas handed from a run's PostgreSQL step to its Parquet step in the same process.
_HANDED_OVER: dict[str, ParquetDelta] = {}
_ROW_GROUP_ROWS = 16_384  # small row groups: reading a few days skips the others by statistics


class ParquetDelta:
    """Spilled copies of the rows a run's upserts stored, by booked_at day."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex  # names this run in the Parquet outbox
        self._folder = tempfile.TemporaryDirectory(prefix="hostpms-delta-")
        self._files: list[str] = []
        self._rows_per_day: dict[DayPartition, int] = {}
        self._moved_from: set[DayPartition] = set()
        # Spilling runs beside the next chunk's load; the export waits for it.
        self._spiller = ThreadPoolExecutor(1, thread_name_prefix="parquet-delta")
        self._spills: list[Future[None]] = []

    def __enter__(self) -> ParquetDelta:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spiller.shutdown(cancel_futures=True)
        self._folder.cleanup()

    def add(self, stats: booking_store.UpsertStats) -> None:
        """Keep what one committed upsert (``keep_written=True``) stored."""
        if stats.written is None:
            raise ValueError("the upsert kept no copy of its rows (keep_written=False)")
        self._moved_from |= stats.moved_from
        if not stats.written.num_rows:
            return
        days = parquet_store.partition_of(stats.written)
        path = f"{self._folder.name}/{len(self._files)}.parquet"
        self._spills.append(self._spiller.submit(_spill, stats.written.append_column(_DAY, days), path))
        self._files.append(path)
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
        """The kept rows of these days (a booking written twice appears twice)."""
        if not self._files:
            return BOOKING_SCHEMA.empty_table()
        for spill in self._spills:
            spill.result()  # raises what a spill raised
        dates = pa.array(partition_dates(days), pa.date32())
        selected = ds.field(_DAY).isin(dates)
        if None in days:
            selected = selected | ds.field(_DAY).is_null()
        table = ds.dataset(self._files, format="parquet").to_table(filter=selected)
        return table.drop_columns([_DAY])


def hand_over(key: str) -> ParquetDelta:
    """A new delta that a later step of the same run, in this process, can ``take_over``.

    The assets run in one process (the in-process executor); elsewhere the Parquet
    step finds nothing and rebuilds from PostgreSQL, which is always right.
    """
    delta = _HANDED_OVER[key] = ParquetDelta()
    return delta


def take_over(key: str) -> ParquetDelta | None:
    """The delta handed over under ``key``, if any; the caller closes it."""
    return _HANDED_OVER.pop(key, None)


def _spill(rows: pa.Table, path: str) -> None:
    """Rows sorted by day in small row groups, uncompressed: written and read once, locally."""
    pq.write_table(
        rows.sort_by(_DAY), path, compression="none", use_dictionary=False, row_group_size=_ROW_GROUP_ROWS
    )

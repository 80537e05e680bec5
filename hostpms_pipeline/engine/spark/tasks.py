"""What Spark's Python workers run: the local engine's own functions, one slice of data at a time.

Each function here returns the callable a ``mapInArrow`` runs on an executor. It
carries the entity's spec (pickled: a spec need not be one of the built-in four)
and calls the local engine's code: ``reading.read_landed`` for landed
pages, ``transform.to_rows`` for columns, mapping and reject rules,
``transform.deduplicate`` for the newest state per id. There is no second copy
of a rule anywhere in the Spark engine.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.engine import quality, reading, transform
from hostpms_pipeline.engine.mapping import MappingTables
from hostpms_pipeline.engine.spark import staging
from hostpms_pipeline.entities.schema import row_schema
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.lake.storage import open_store

ArrowTask = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
READ_THREADS = 8  # object-store reads are I/O bound

# One row per unit of work a map task did.
MAP_MANIFEST = pa.schema(
    [
        ("rows_file", pa.string()),
        ("rejected_file", pa.string()),
        ("raw_count", pa.int64()),
        ("row_count", pa.int64()),
        ("rejected_count", pa.int64()),
        ("unknown_values", pa.string()),  # JSON: column -> original value -> count
    ]
)
# One row per deduplicated partition.
DEDUP_MANIFEST = pa.schema(
    [
        ("rows_file", pa.string()),
        ("rows_in", pa.int64()),
        ("row_count", pa.int64()),
        ("first_id", pa.string()),
        ("hotel_ids", pa.string()),  # JSON list
    ]
)


def _records(spec: EntitySpec, work: dict, raw_url: str | None, folder: str) -> pa.Table:
    """The raw records of one unit of work: staged by the driver, or landed files to read."""
    if "records_file" in work:
        return staging.read(folder, [work["records_file"]])
    store = open_store(raw_url)  # type: ignore[arg-type]
    locations = work["files"]
    with ThreadPoolExecutor(READ_THREADS) as pool:
        bodies = list(pool.map(store.get_location, locations))
    return reading.read_landed(spec, zip(locations, bodies, strict=True))


def map_task(
    spec: EntitySpec,
    tables: MappingTables,
    synced_at: datetime,
    raw_url: str | None,
    folder: str,
) -> ArrowTask:
    """Each unit of work's records → rows and rejects (``transform.to_rows``), staged as files."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for text in batch.column("work").to_pylist():
                records = _records(spec, json.loads(text), raw_url, folder)
                rows, rejected = transform.to_rows(spec, records, tables, synced_at)
                unknown = quality.mapped_values_known(spec, rows).metadata["unknown_values"]
                manifest = {
                    "rows_file": [staging.write(folder, "mapped", rows)],
                    "rejected_file": [staging.write(folder, "rejected", rejected)],
                    "raw_count": [records.num_rows],
                    "row_count": [rows.num_rows],
                    "rejected_count": [rejected.num_rows],
                    "unknown_values": [json.dumps(unknown)],
                }
                yield pa.RecordBatch.from_pydict(manifest, schema=MAP_MANIFEST)

    return run


def read_rows_task(spec: EntitySpec, folder: str, spark_schema: pa.Schema) -> ArrowTask:
    """Staged mapped rows, as batches Spark can shuffle (every column nullable, Spark's types)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = row_schema(spec)
        for batch in batches:
            for name in batch.column("rows_file").to_pylist():
                rows = staging.read(folder, [name], schema).cast(spark_schema)
                yield from rows.to_batches()

    return run


def deduplicate_task(spec: EntitySpec, folder: str) -> ArrowTask:
    """All rows of one id-partition → one row per id (``transform.deduplicate``), staged."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        schema = row_schema(spec)
        received = [batch for batch in batches if batch.num_rows]
        if not received:
            return
        rows = pa.Table.from_batches(received).cast(schema)
        kept = transform.deduplicate(rows)
        hotels = pc.unique(kept["hotel_id"]).to_pylist()
        manifest = {
            "rows_file": [staging.write(folder, "deduplicated", kept)],
            "rows_in": [rows.num_rows],
            "row_count": [kept.num_rows],
            "first_id": [kept["id"][0].as_py()],
            "hotel_ids": [json.dumps(sorted(hotels))],
        }
        yield pa.RecordBatch.from_pydict(manifest, schema=DEDUP_MANIFEST)

    return run


def warm_up(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Passes batches through; run once per worker, it has imported the engine's modules."""
    yield from batches

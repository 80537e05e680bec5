"""The processed datasets: one per entity, Parquet partitioned by a date of each row's own.

Layout (Hive style, as Athena and Spark read it)::

    {processed}/{dataset}/source=hostpms/year=YYYY/month=MM/day=DD/part-0.parquet

The dataset is the entity's table name (``bookings``, ``guests``, ...); the day is
the UTC date of the spec's partition column (``booked_at`` for bookings), never the
load time. A row whose partition column is empty goes to the Hive null
partition ``year=__HIVE_DEFAULT_PARTITION__/month=.../day=...``, which readers
turn back into nulls; its partition key is ``None``.

Each partition is one file with a fixed name holding the row columns minus
``source`` (a partition column, given back on read) and minus the personal columns:
a pseudonymous ``guest_key`` (keyed hash, ``gdpr.keys``) stands in for the person, so
no Parquet file holds clear personal data (``entities.schema.parquet_schema``). A partition is replaced as
a whole: the new file lands under the final name in one step (a rename on a
local folder; on S3 an object only appears once its upload completes), then any
other file in the partition is deleted, so a reader sees the old or the new
content, never half a file. The dataset is derived from PostgreSQL and can be
rebuilt from it, so local writes are not fsynced.

S3 endpoint and region come from the standard AWS variables (``AWS_ENDPOINT_URL_S3``
/ ``AWS_ENDPOINT_URL``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``), credentials from
the AWS SDK's own chain. Encryption at rest on S3 is the bucket's default
encryption (SSE-S3 on every bucket since 2023): pyarrow cannot ask for it per put.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow.fs import FileSelector, FileSystem, FileType, LocalFileSystem, S3FileSystem

from hostpms_pipeline.entities.row_ids import SOURCE
from hostpms_pipeline.entities.schema import (
    GUEST_KEY,
    DayPartition,
    day_partition,
    day_runs,
    dictionary_columns,
    first_of_each_id,
    parquet_schema,
    partition_days,
)
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.gdpr.keys import current_hasher, guest_keys

FILE_NAME = "part-0.parquet"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
PARTITION_COLUMNS = ("source", "year", "month", "day")
# Partition values are read as text: the null partition is not a number.
_PARTITION_SCHEMA = pa.schema([(name, pa.string()) for name in PARTITION_COLUMNS])
_PARTITIONING = ds.partitioning(_PARTITION_SCHEMA, flavor="hive")
# Row order inside a file, so the same rows always make the same file.
_ROW_ORDER = [("hotel_id", "ascending"), ("external_id", "ascending")]
_DAY_COLUMN = "__partition_day"
# Columns of hashes (uuid5 ids, state hashes, keyed guest hashes), stored uncompressed.
_RANDOM_COLUMNS = frozenset({"id", "state_hash", GUEST_KEY})
_COMPRESSION = "snappy"
_WRITE_THREADS = 8  # the work is I/O (S3 round trips) and pyarrow releases the GIL


@dataclass(frozen=True)
class DatasetSummary:
    row_count: int
    files: tuple[str, ...]


@cache
def file_schema(spec: EntitySpec) -> pa.Schema:
    """A partition file's columns: the dataset's, less ``source`` (a partition column, given back on read)."""
    schema = parquet_schema(spec)
    return schema.remove(schema.get_field_index("source"))


@cache
def _dataset_schema(spec: EntitySpec) -> pa.Schema:
    return pa.unify_schemas([file_schema(spec), _PARTITION_SCHEMA])


def touched_partitions(spec: EntitySpec, table: pa.Table) -> set[DayPartition]:
    return {day_partition(day) for day in pc.unique(partition_days(spec, table)).to_pylist()}


def _dataset_root(root: str, spec: EntitySpec) -> str:
    return f"{root}/{spec.table}"


def partition_path(key: DayPartition) -> str:
    """The partition's folder, relative to the dataset root."""
    if key is None:
        year = month = day = NULL_PARTITION
    else:
        year, month, day = f"{key[0]:04d}", f"{key[1]:02d}", f"{key[2]:02d}"
    return f"source={SOURCE}/year={year}/month={month}/day={day}"


def replace_partitions(
    processed_url: str, spec: EntitySpec, rows: pa.Table, partitions: Collection[DayPartition]
) -> int:
    """Make each listed partition hold exactly its rows from ``rows``; return rows written.

    A listed partition without rows is removed; partitions not listed are never
    touched. Every row must fall in a listed partition.
    """
    rows = dataset_rows(spec, rows)
    stray = touched_partitions(spec, rows) - set(partitions)
    if stray:
        raise ValueError(
            f"{len(stray)} partition(s) of the given rows are not in the list to replace"
        )
    filesystem, root = filesystem_for(processed_url)
    groups = _split_by_partition(spec, rows)

    def replace(key: DayPartition) -> int:
        folder = f"{_dataset_root(root, spec)}/{partition_path(key)}"
        return _replace_partition(spec, filesystem, folder, groups.get(key))

    with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
        return sum(pool.map(replace, set(partitions)))


def merge_partitions(
    processed_url: str, spec: EntitySpec, written: pa.Table, partitions: Collection[DayPartition]
) -> int:
    """Fold rows just written to PostgreSQL into the listed partitions' files; return rows written.

    Each partition becomes its file's rows with those of ``written`` in place of the
    ones with the same id (the newer ``source_updated_at`` wins, so a later run's
    export that came first is kept), in the same order a rewrite from PostgreSQL
    gives. The caller vouches that nothing else changed these partitions' rows.
    """
    written = dataset_rows(spec, written)
    if stray := touched_partitions(spec, written) - set(partitions):
        raise ValueError(
            f"{len(stray)} partition(s) of the given rows are not in the list to merge"
        )
    filesystem, root = filesystem_for(processed_url)
    # File order, and a row written twice by the run comes newest first.
    groups = _split_by_partition(
        spec, written, row_order=[*_ROW_ORDER, ("source_updated_at", "descending")]
    )

    def merge(key: DayPartition) -> int:
        folder = f"{_dataset_root(root, spec)}/{partition_path(key)}"
        incoming = groups.get(key)
        if incoming is None:
            return 0
        existing = _read_file(spec, filesystem, f"{folder}/{FILE_NAME}")
        merged = _merged(existing, _newest_per_id(incoming))
        return _replace_partition(spec, filesystem, folder, merged)

    with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
        return sum(pool.map(merge, set(partitions)))


def partition_row_counts(
    processed_url: str, spec: EntitySpec, partitions: Collection[DayPartition]
) -> dict[DayPartition, int]:
    """Rows in each listed partition's file, from the Parquet footers (0 when there is none)."""
    filesystem, root = filesystem_for(processed_url)

    def count(key: DayPartition) -> int:
        path = f"{_dataset_root(root, spec)}/{partition_path(key)}/{FILE_NAME}"
        if filesystem.get_file_info(path).type == FileType.NotFound:
            return 0
        with filesystem.open_input_file(path) as source:
            return pq.ParquetFile(source).metadata.num_rows

    keys = list(partitions)
    with ThreadPoolExecutor(max_workers=_WRITE_THREADS) as pool:
        return dict(zip(keys, pool.map(count, keys), strict=True))


def _read_file(spec: EntitySpec, filesystem: FileSystem, path: str) -> pa.Table | None:
    if filesystem.get_file_info(path).type == FileType.NotFound:
        return None
    return pq.read_table(path, filesystem=filesystem, schema=file_schema(spec))


def _newest_per_id(rows: pa.Table) -> pa.Table:
    """One row per id, the first of each id's rows: ``rows`` are in file order, where
    the rows of one key (same hotel and HostPMS id, so same id) are adjacent,
    newest first (a run can write a row twice)."""
    first = first_of_each_id(rows["id"])
    return rows if pc.all(first).as_py() else rows.filter(first)


def _merged(existing: pa.Table | None, incoming: pa.Table) -> pa.Table:
    """``existing`` (in file order) with ``incoming`` (in file order too) in place of the
    rows sharing an id, unless those are newer; in file order (the order of a rewrite
    from PostgreSQL).

    When every incoming row replaces one in place, the order is kept without a sort
    (the usual update: a tenth of the rows of every day).
    """
    if existing is None:
        return incoming
    position = pc.fill_null(pc.index_in(existing["id"], value_set=incoming["id"]), -1).to_numpy()
    matched = position >= 0
    existing_wins = np.zeros(existing.num_rows, dtype=bool)
    existing_wins[matched] = (
        _micros(existing["source_updated_at"])[matched]
        > _micros(incoming["source_updated_at"])[position[matched]]
    )
    replaces = matched & ~existing_wins
    # Rows of existing + incoming, as indices into their concatenation.
    rows = np.arange(existing.num_rows)
    rows[replaces] = existing.num_rows + position[replaces]
    placed = np.zeros(incoming.num_rows, dtype=bool)
    placed[position[matched]] = True  # replaced a row, or lost to a newer one
    unplaced = np.flatnonzero(~placed) + existing.num_rows
    both = pa.concat_tables(
        [existing, incoming.select(existing.column_names).cast(existing.schema)]
    )
    merged = both.take(pa.array(np.concatenate([rows, unplaced])))
    return merged.sort_by(_ROW_ORDER) if len(unplaced) else merged


def _micros(moments: pa.ChunkedArray) -> np.ndarray:
    return moments.cast(pa.int64()).to_numpy()


def read_rows(
    processed_url: str, spec: EntitySpec, columns: Sequence[str] | None = None
) -> pa.Table:
    """Every row in the entity's dataset, with the dataset's columns (``parquet_schema``)."""
    schema = parquet_schema(spec)
    names = list(columns or schema.names)
    target = pa.schema([schema.field(name) for name in names])
    dataset = _dataset(processed_url, spec)
    if dataset is None:
        return target.empty_table()
    return dataset.to_table(columns=names).cast(target)


def dataset_summary(processed_url: str, spec: EntitySpec) -> DatasetSummary:
    dataset = _dataset(processed_url, spec)
    if dataset is None:
        return DatasetSummary(0, ())
    return DatasetSummary(dataset.count_rows(), tuple(sorted(dataset.files)))


def filesystem_for(url: str) -> tuple[FileSystem, str]:
    """The pyarrow filesystem for a local path, ``file://`` or ``s3://`` URL, and the root in it."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        s3 = S3FileSystem(
            endpoint_override=_aws_variable("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
            region=_aws_variable("AWS_REGION", "AWS_DEFAULT_REGION"),
        )
        return s3, f"{parts.netloc}{parts.path}".rstrip("/")
    if parts.scheme in ("", "file"):
        local = Path(unquote(parts.path) if parts.scheme else url).absolute()
        return LocalFileSystem(), local.as_posix()
    raise ValueError(f"unsupported dataset URL scheme {parts.scheme!r}")


def _aws_variable(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def dataset_rows(spec: EntitySpec, rows: pa.Table) -> pa.Table:
    """The dataset's columns in schema order and types (stored rows are pseudonymised here:
    personal columns dropped, ``guest_key`` added); one source, the layout's."""
    schema = parquet_schema(spec)
    if spec.guest_key is not None and GUEST_KEY not in rows.column_names:
        rows = rows.append_column(GUEST_KEY, guest_keys(spec, rows, current_hasher()))
    rows = rows.select(schema.names).cast(schema)
    if not pc.all(pc.equal(rows["source"], SOURCE), min_count=0).as_py():
        raise ValueError(f"the {spec.table} dataset only holds source {SOURCE!r}")
    return rows


def _split_by_partition(
    spec: EntitySpec, rows: pa.Table, row_order: Sequence[tuple[str, str]] = _ROW_ORDER
) -> dict[DayPartition, pa.Table]:
    """Each partition's rows as file columns, in a fixed order so equal rows make equal files.

    One sort and one gather for all partitions, then zero-copy slices: gathering
    per partition costs twice as much on a million rows.
    """
    days = partition_days(spec, rows)
    order = pc.sort_indices(
        rows.append_column(_DAY_COLUMN, days), [(_DAY_COLUMN, "ascending"), *row_order]
    )
    ordered = rows.select(file_schema(spec).names).take(order)
    return {day: ordered.slice(first, count) for day, first, count in day_runs(days.take(order))}


def _replace_partition(
    spec: EntitySpec, filesystem: FileSystem, folder: str, rows: pa.Table | None
) -> int:
    if rows is None:
        if filesystem.get_file_info(folder).type != FileType.NotFound:
            filesystem.delete_dir(folder)
        return 0
    final = f"{folder}/{FILE_NAME}"
    _write_whole(filesystem, final, rows, list(dictionary_columns(spec)))
    for info in filesystem.get_file_info(FileSelector(folder)):
        if info.path != final:
            _delete(filesystem, info.path, info.type)
    return rows.num_rows


def _write_whole(filesystem: FileSystem, path: str, rows: pa.Table, dictionary: list[str]) -> None:
    """Write ``rows`` so that ``path`` never holds a partial file.

    Only columns with few distinct values in a day are dictionary-encoded: trying it
    on ids, names and timestamps costs a third of the write time and saves nothing.
    Hashes are random: Snappy spends a third of the write time on them and saves 6 %.
    """
    options = {
        "use_dictionary": dictionary,
        "compression": {
            name: "none" if name in _RANDOM_COLUMNS else _COMPRESSION for name in rows.column_names
        },
    }
    if not isinstance(filesystem, LocalFileSystem):
        # Object stores publish an object only once its upload completes.
        pq.write_table(rows, path, filesystem=filesystem, **options)
        return
    folder, _, name = path.rpartition("/")
    filesystem.create_dir(folder)
    # A leading dot hides the in-flight file from dataset readers (and Athena).
    temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(rows, temporary, filesystem=filesystem, **options)
        filesystem.move(temporary, path)
    except BaseException:
        if filesystem.get_file_info(temporary).is_file:
            filesystem.delete_file(temporary)
        raise


def _delete(filesystem: FileSystem, path: str, kind: FileType) -> None:
    if kind == FileType.Directory:
        filesystem.delete_dir(path)
    else:
        filesystem.delete_file(path)


def _dataset(processed_url: str, spec: EntitySpec) -> ds.Dataset | None:
    filesystem, root = filesystem_for(processed_url)
    base = _dataset_root(root, spec)
    if filesystem.get_file_info(base).type == FileType.NotFound:
        return None
    return ds.dataset(
        base,
        schema=_dataset_schema(spec),
        filesystem=filesystem,
        format="parquet",
        partitioning=_PARTITIONING,
    )

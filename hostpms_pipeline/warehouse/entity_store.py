"""An entity's table: bulk upsert from Arrow, rejected records, reads back to Arrow.

Every entity's table (``bookings``, ``guests``, ``rooms``, ``payments``, ...) has
the columns of ``entities.schema.row_schema(spec)`` and is written the same way;
the spec names the table and the column whose day is the Parquet partition.

Bulk data crosses the wire by COPY (``pg_copy``: binary in, CSV out), so no
Python code runs per row and everything happens on the caller's psycopg
connection, inside its transaction.

Upsert rules (contract section 5, webhooks at least once and out of order):

- A record replaces the stored one only when its ``source_updated_at`` is newer;
  an older one is *stale*, an equal one is a replay: both leave the row alone.
- ``version`` is 1 on insert and goes up by exactly 1 when a newer record carries
  a different ``state_hash``; ``synced_at`` is when that state was written.
- A newer record with the *same* state hash keeps ``version`` and ``synced_at``
  but does advance ``source_updated_at`` (and ``raw_location``): otherwise a
  state older than it, arriving later, would look newer than the stored row and
  overwrite it. Such rows count as *unchanged*.
- ``event_received_at`` keeps the newest value seen.
- The incoming ``synced_at`` and ``version`` columns are ignored: the store sets them.

Transactions: every write runs in ``conn.transaction()``. With no transaction
open it is its own transaction and commits; inside the caller's, it is a
savepoint and commits with the caller. Either way a failing batch writes
nothing. Writers take a transaction-scoped advisory lock per property before
merging, so runs touching the same property serialise; this relies on the
default READ COMMITTED isolation (the stored rows are read after the locks, and
no writer changes a locked property's rows until the holder commits, so the
rows read can then be inserted without ON CONFLICT and updated by row address).

Speed (benchmarks/bench_pipeline.py): new keys are COPYed straight into
the table (a batch that looks all new, without probing its keys first);
only records newer than a stored row are staged in full. The table has
fillfactor 90, so such an update usually stays on its page (HOT) and writes
no index entries. Batches come sorted by id (``transform.deduplicate``), so the
primary key is filled page by page.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from hostpms_pipeline.entities.schema import (
    NATURAL_KEY,
    REJECTED_SCHEMA,
    TIMESTAMP,
    DayPartition,
    day_partition,
    partition_dates,
    row_schema,
    utc_dates,
)
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.warehouse.database import advisory_key
from hostpms_pipeline.warehouse.pg_copy import copy_arrow, copy_query_to_arrow

STAGING_TABLE = "row_staging"
ALL_NEW_SAMPLE_SIZE = 1_000  # ids probed to guess that a batch is all new
KEYS_STAGING_TABLE = "key_staging"
# A row's id stands for its natural key (uuid5 of it): the probe uses the primary key.
_KEYS_STAGING_COLUMNS = "id uuid, ordinal bigint"
# Columns the store decides; the incoming values are ignored.
STORE_OWNED = ("synced_at", "version")
# Updated from the incoming record whenever it is newer (same state or not).
ALWAYS_REFRESHED = ("source_updated_at", "raw_location", "state_hash")
NEVER_UPDATED = ("id", *NATURAL_KEY)
KEY_COLUMNS = ("id", *NATURAL_KEY, "version", "state_hash")


def _state_updated(spec: EntitySpec) -> tuple[str, ...]:
    skipped = {*STORE_OWNED, *ALWAYS_REFRESHED, *NEVER_UPDATED, "event_received_at"}
    return tuple(name for name in row_schema(spec).names if name not in skipped)


@dataclass(frozen=True)
class UpsertStats:
    inserted: int
    updated: int  # version bumped
    unchanged: int  # replay, or newer record with the same state
    stale: int  # older than the stored record, ignored
    # Partition days holding a row this upsert wrote (a newer same-state record
    # included: its source_updated_at moved), plus the old day when a row moved.
    touched_partitions: frozenset[DayPartition]
    # Old days of the rows whose partition column moved to another day.
    moved_from: frozenset[DayPartition] = frozenset()
    # The rows exactly as stored after this upsert (inserted and replaced), when asked for.
    written: pa.Table | None = None

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.stale


def upsert(
    conn: psycopg.Connection, spec: EntitySpec, rows: pa.Table, *, keep_written: bool = False
) -> UpsertStats:
    """Merge rows (``row_schema(spec)``, one per natural key) into the entity's table.

    Each row's ``id`` must be its key's (``schema.row_id``): stored rows are
    found by id.

    The batch's keys go to PostgreSQL first (a narrow COPY) to find which are
    stored and how new the stored rows are; new keys are then COPYed straight
    into the table (far cheaper than INSERT ... SELECT), and only the records
    newer than their stored row are staged in full to UPDATE it. When a sample
    of the batch's ids finds none stored (a first load), the whole batch is
    COPYed in at once instead, and only if that meets a stored id after all is
    it undone and merged as above. A key repeated within the batch is refused
    (ValueError) before anything is written. With ``keep_written`` the result
    carries the rows as stored, so the Parquet export can use them without
    reading them back.
    """
    schema = row_schema(spec)
    rows = rows.select(schema.names).cast(schema)
    # The id stands for the natural key (uuid5 of it), and is cheaper to count.
    if pc.count_distinct(rows["id"]).as_py() != rows.num_rows:
        raise ValueError(
            f"a {spec.row} key appears more than once in the batch: deduplicate it first"
        )
    with conn.transaction():
        lock_properties(conn, spec, pc.unique(rows["hotel_id"]).to_pylist())
        # Read after the locks: no other writer changes these properties' rows until commit.
        now = conn.execute("SELECT now()").fetchone()
        assert now is not None
        written_at = now[0]
        merge = _insert_if_all_new(conn, spec, rows, written_at) or _merge(
            conn, spec, rows, written_at
        )
    written = None
    if keep_written:
        replaced = _as_updated(spec, merge.newer_rows, merge.newer_stored, written_at)
        written = pa.concat_tables([merge.inserted_rows.cast(schema), replaced])
    return replace(merge.stats(), written=written)


def _insert_if_all_new(
    conn: psycopg.Connection, spec: EntitySpec, rows: pa.Table, written_at: datetime
) -> _MergePlan | None:
    """COPY the whole batch in if a sample of its ids finds none stored; None (nothing
    written) if the sample finds one, or the COPY meets a stored id after all.

    On a first load this saves staging and probing every key.
    """
    step = max(1, rows.num_rows // ALL_NEW_SAMPLE_SIZE)
    sample = rows["id"][::step].to_pylist()
    if conn.execute(_any_stored_sql(spec), (sample,)).fetchone() != (False,):
        return None
    merge = _MergePlan(spec, rows, _stored_schema(spec).empty_table(), written_at)
    try:
        with conn.transaction():  # a savepoint: a conflict undoes only this COPY
            copy_arrow(conn, spec.table, merge.inserted_rows)
    except psycopg.errors.UniqueViolation as error:
        if error.diag.constraint_name != f"{spec.table}_pkey":
            raise
        return None
    return merge


def _merge(
    conn: psycopg.Connection, spec: EntitySpec, rows: pa.Table, written_at: datetime
) -> _MergePlan:
    """Insert the new keys and update the stored rows that are older, from the stored rows."""
    _create_staging(conn, KEYS_STAGING_TABLE, _KEYS_STAGING_COLUMNS)
    ordinals = pa.arange(0, rows.num_rows)
    copy_arrow(conn, KEYS_STAGING_TABLE, pa.table({"id": rows["id"], "ordinal": ordinals}))
    merge = _MergePlan(spec, rows, _stored_rows(conn, spec), written_at)
    copy_arrow(conn, spec.table, merge.inserted_rows)
    if merge.newer_rows.num_rows:
        _update_stored(conn, spec, merge.newer_rows, merge.newer_stored["stored_row"])
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(KEYS_STAGING_TABLE)))
    return merge


class _MergePlan:
    """What each record of a batch does to the stored rows, from the stored rows of its keys.

    ``inserted_rows`` are the new rows as they are stored (written at ``written_at``).
    """

    def __init__(
        self, spec: EntitySpec, rows: pa.Table, stored: pa.Table, written_at: datetime
    ) -> None:
        self.partition_column = spec.partition_column
        new_rows = rows  # all new (a first load): no copy
        if stored.num_rows:
            is_new = np.ones(rows.num_rows, dtype=bool)
            is_new[stored["ordinal"].to_numpy()] = False
            new_rows = rows.filter(pa.array(is_new))
        self.inserted_rows = _as_stored(new_rows, written_at)
        incoming = rows.take(stored["ordinal"])
        newer = pc.greater(incoming["source_updated_at"], stored["stored_updated_at"])
        same_state = pc.equal(incoming["state_hash"], stored["stored_hash"])
        self.newer_rows = incoming.filter(newer)
        self.newer_stored = stored.filter(newer)
        self.old_partition = self.newer_stored["stored_partition"]
        self.updated = _count(pc.and_(newer, pc.invert(same_state)))
        self.stale = _count(pc.less(incoming["source_updated_at"], stored["stored_updated_at"]))
        self.unchanged = stored.num_rows - self.updated - self.stale

    def stats(self) -> UpsertStats:
        column = self.partition_column
        days = [
            utc_dates(self.inserted_rows[column]),
            utc_dates(self.newer_rows[column]),
            utc_dates(self.old_partition),
        ]
        old_days, new_days = days[2], days[1]
        # An empty partition column is a partition of its own: to or from it is a move too.
        either_null = pc.xor(pc.is_valid(old_days), pc.is_valid(new_days))
        moved_from = old_days.filter(pc.fill_null(pc.not_equal(old_days, new_days), either_null))
        return UpsertStats(
            inserted=self.inserted_rows.num_rows,
            updated=self.updated,
            unchanged=self.unchanged,
            stale=self.stale,
            touched_partitions=_partitions(
                pa.chunked_array([chunk for d in days for chunk in _chunks(d)], pa.date32())
            ),
            moved_from=_partitions(moved_from),
        )


def _chunks(values: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return values.chunks if isinstance(values, pa.ChunkedArray) else [values]


def _partitions(days: pa.ChunkedArray) -> frozenset[DayPartition]:
    return frozenset(map(day_partition, pc.unique(days).to_pylist()))


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return pc.sum(mask, min_count=0).as_py()


def _stored_rows(conn: psycopg.Connection, spec: EntitySpec) -> pa.Table:
    """The stored row of each staged key, probed through the primary key.

    Without statistics on the fresh staging table the planner hashes the keys
    and scans the whole table, a cost that grows with the table (0.8 s for
    100k keys against 1M rows, against 0.35 s probing the index).
    """
    conn.execute("SET LOCAL enable_hashjoin = off")
    conn.execute("SET LOCAL enable_mergejoin = off")
    stored = copy_query_to_arrow(conn, _stored_sql(spec), [], _stored_schema(spec))
    conn.execute("RESET enable_hashjoin")
    conn.execute("RESET enable_mergejoin")
    return stored


def _create_staging(conn: psycopg.Connection, name: str, columns: str | sql.Composable) -> None:
    statement = sql.SQL("CREATE TEMP TABLE {} ({}) ON COMMIT DROP")
    columns = sql.SQL(columns) if isinstance(columns, str) else columns
    conn.execute(statement.format(sql.Identifier(name), columns))


def _as_stored(new_rows: pa.Table, written_at: datetime) -> pa.Table:
    """New rows as stored: version 1, synced now (the store owns both columns)."""
    rows = new_rows.num_rows
    columns = {
        "synced_at": pa.repeat(pa.scalar(written_at, TIMESTAMP), rows),
        "version": pa.repeat(pa.scalar(1, pa.int32()), rows),
    }
    for name, values in columns.items():
        new_rows = new_rows.set_column(new_rows.schema.get_field_index(name), name, values)
    return new_rows


def _update_stored(
    conn: psycopg.Connection, spec: EntitySpec, newer: pa.Table, stored_rows: pa.ChunkedArray
) -> None:
    """Overwrite the stored rows (by row address) with their newer records."""
    like = sql.SQL("LIKE {}, stored_row text").format(sql.Identifier(spec.table))  # a tid, as text
    _create_staging(conn, STAGING_TABLE, like)
    copy_arrow(conn, STAGING_TABLE, newer.append_column("stored_row", stored_rows))
    conn.execute(_update_sql(spec))
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(STAGING_TABLE)))


def _as_updated(
    spec: EntitySpec, newer: pa.Table, stored: pa.Table, written_at: datetime
) -> pa.Table:
    """The rows ``_UPDATE_SQL`` leaves, computed from the newer records and the stored
    columns it reads (which no other writer changes while the property locks are
    held): cheaper than sending every updated row back with RETURNING."""
    changed = pc.not_equal(newer["state_hash"], stored["stored_hash"])
    store_set = {
        "version": pc.add(stored["stored_version"], changed.cast(pa.int32())),
        "synced_at": pc.if_else(
            changed, pa.scalar(written_at, TIMESTAMP), stored["stored_synced_at"]
        ),
        # GREATEST: the newest of the two, ignoring a missing one.
        "event_received_at": _latest(
            stored["stored_event_received_at"], newer["event_received_at"]
        ),
    }
    for name, values in store_set.items():
        newer = newer.set_column(newer.schema.get_field_index(name), name, values)
    return newer.cast(row_schema(spec))


def _latest(*moments: pa.ChunkedArray) -> pa.ChunkedArray:
    """Per row, the latest of the moments, ignoring missing ones (as GREATEST does)."""
    # Arrow compares epoch microseconds; it has no such kernel for zone-aware timestamps.
    micros = [moment.cast(pa.int64()) for moment in moments]
    return pc.max_element_wise(*micros, skip_nulls=True).cast(TIMESTAMP)


def lock_properties(conn: psycopg.Connection, spec: EntitySpec, hotel_ids: Iterable[str]) -> None:
    """Transaction-scoped locks, always taken in key order so two writers cannot deadlock."""
    for key in sorted({advisory_key(spec.table, hotel_id) for hotel_id in hotel_ids}):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


def insert_rejected(conn: psycopg.Connection, rejected: pa.Table) -> int:
    """Store rejected records (REJECTED_SCHEMA); repeats of (raw_location, record_index) are skipped."""
    rejected = rejected.select(REJECTED_SCHEMA.names).cast(REJECTED_SCHEMA)
    columns = sql.SQL(", ").join(map(sql.Identifier, REJECTED_SCHEMA.names))
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE rejected_staging (LIKE rejected_records) ON COMMIT DROP")
        copy_arrow(conn, "rejected_staging", rejected)
        inserted = conn.execute(
            sql.SQL(
                "INSERT INTO rejected_records ({columns}) SELECT {columns} FROM rejected_staging"
                " ON CONFLICT (raw_location, record_index) DO NOTHING"
            ).format(columns=columns)
        ).rowcount
        conn.execute("DROP TABLE rejected_staging")
    return inserted


def _day_sql(spec: EntitySpec) -> sql.Composable:
    """The partition column's UTC date, in SQL."""
    column = sql.Identifier(spec.partition_column)
    if pa.types.is_date32(row_schema(spec).field(spec.partition_column).type):
        return column
    return sql.SQL("({} AT TIME ZONE 'UTC')::date").format(column)


def _in_days_sql(spec: EntitySpec) -> sql.Composable:
    # A constant array: PostgreSQL hashes it, so many days cost no more than one.
    return sql.SQL("({day} = ANY(%s::date[]) OR ({column} IS NULL AND %s))").format(
        day=_day_sql(spec), column=sql.Identifier(spec.partition_column)
    )


def fetch_rows(
    conn: psycopg.Connection,
    spec: EntitySpec,
    *,
    partitions: Collection[DayPartition] | None = None,
    hotel_id: str | None = None,
) -> pa.Table:
    """Stored rows as a ``row_schema(spec)`` table, optionally only some partition days or one hotel.

    Ordered by the partition column and key, so a rewritten partition comes out the same every time.
    """
    schema = row_schema(spec)
    filters: list[sql.Composable] = []
    params: list[object] = []
    if partitions is not None:
        filters.append(_in_days_sql(spec))
        params += [partition_dates(partitions), None in partitions]
    if hotel_id is not None:
        filters.append(sql.SQL("hotel_id = %s"))
        params.append(hotel_id)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(filters) if filters else sql.SQL("")
    query = sql.SQL("SELECT {} FROM {}{} ORDER BY {}, source, hotel_id, external_id").format(
        sql.SQL(", ").join(map(sql.Identifier, schema.names)),
        sql.Identifier(spec.table),
        where,
        sql.Identifier(spec.partition_column),
    )
    return copy_query_to_arrow(conn, query, params, schema)


def rows_per_day(
    conn: psycopg.Connection, spec: EntitySpec, partitions: Collection[DayPartition]
) -> dict[DayPartition, int]:
    """How many stored rows fall on each of these partition days (None: the null partition)."""
    query = sql.SQL("SELECT {day}, count(*) FROM {table} WHERE {in_days} GROUP BY 1").format(
        day=_day_sql(spec), table=sql.Identifier(spec.table), in_days=_in_days_sql(spec)
    )
    rows = conn.execute(query, (partition_dates(partitions), None in partitions))
    return {day_partition(day): count for day, count in rows}


def stored_keys(
    conn: psycopg.Connection, spec: EntitySpec, *, hotel_id: str | None = None
) -> pa.Table:
    """id, natural key, version and state hash of every stored row (for PostgreSQL/Parquet checks)."""
    schema = row_schema(spec)
    keys = pa.schema([schema.field(name) for name in KEY_COLUMNS])
    query = sql.SQL("SELECT {} FROM {}{} ORDER BY source, hotel_id, external_id").format(
        sql.SQL(", ").join(map(sql.Identifier, keys.names)),
        sql.Identifier(spec.table),
        sql.SQL(" WHERE hotel_id = %s") if hotel_id is not None else sql.SQL(""),
    )
    return copy_query_to_arrow(conn, query, [hotel_id] if hotel_id is not None else [], keys)


def row_counts(conn: psycopg.Connection, spec: EntitySpec) -> dict[str, int]:
    """Number of stored rows per hotel."""
    query = sql.SQL("SELECT hotel_id, count(*) FROM {} GROUP BY hotel_id ORDER BY hotel_id")
    rows = conn.execute(query.format(sql.Identifier(spec.table)))
    return {hotel_id: count for hotel_id, count in rows}


def unknown_references(
    conn: psycopg.Connection, spec: EntitySpec, column: str, target: EntitySpec, limit: int = 10
) -> tuple[int, list[str]]:
    """Rows whose ``column`` names no stored row of ``target`` at the same property:
    how many, and the HostPMS ids of a few."""
    query = sql.SQL(
        "SELECT s.external_id FROM {table} AS s WHERE s.{column} IS NOT NULL AND NOT EXISTS"
        " (SELECT FROM {target} AS t WHERE t.hotel_id = s.hotel_id AND t.external_id = s.{column})"
        " ORDER BY s.hotel_id, s.external_id"
    ).format(
        table=sql.Identifier(spec.table),
        column=sql.Identifier(column),
        target=sql.Identifier(target.table),
    )
    ids = [external_id for (external_id,) in conn.execute(query)]
    return len(ids), ids[:limit]


@cache
def _stored_schema(spec: EntitySpec) -> pa.Schema:
    return pa.schema(
        [
            ("ordinal", pa.int64()),
            ("stored_row", pa.string()),
            ("stored_updated_at", TIMESTAMP),
            ("stored_hash", pa.string()),
            ("stored_partition", row_schema(spec).field(spec.partition_column).type),
            ("stored_version", pa.int32()),
            ("stored_synced_at", TIMESTAMP),
            ("stored_event_received_at", TIMESTAMP),
        ]
    )


@cache
def _stored_sql(spec: EntitySpec) -> sql.Composed:
    return sql.SQL(
        "SELECT k.ordinal, b.ctid::text, b.source_updated_at, b.state_hash, b.{partition},"
        " b.version, b.synced_at, b.event_received_at"
        " FROM {keys} AS k JOIN {table} AS b USING (id)"
    ).format(
        keys=sql.Identifier(KEYS_STAGING_TABLE),
        table=sql.Identifier(spec.table),
        partition=sql.Identifier(spec.partition_column),
    )


@cache
def _update_sql(spec: EntitySpec) -> sql.Composed:
    state_changed = sql.SQL("s.state_hash <> b.state_hash")
    assignments: list[sql.Composable] = [
        sql.SQL("{0} = s.{0}").format(sql.Identifier(name))
        for name in (*_state_updated(spec), *ALWAYS_REFRESHED)
    ]
    assignments += [
        sql.SQL("event_received_at = GREATEST(b.event_received_at, s.event_received_at)"),
        sql.SQL("version = b.version + ({})::integer").format(state_changed),
        sql.SQL("synced_at = CASE WHEN {} THEN now() ELSE b.synced_at END").format(state_changed),
    ]
    # The ANY(ARRAY(...)) makes the planner fetch the stored rows by address
    # instead of scanning the table for a hash join.
    return sql.SQL(
        """
        UPDATE {table} AS b SET {assignments}
        FROM {staging} AS s
        WHERE b.ctid = s.stored_row::tid AND s.source_updated_at > b.source_updated_at
          AND b.ctid = ANY(ARRAY(SELECT stored_row::tid FROM {staging}))
        """
    ).format(
        table=sql.Identifier(spec.table),
        staging=sql.Identifier(STAGING_TABLE),
        assignments=sql.SQL(", ").join(assignments),
    )


@cache
def _any_stored_sql(spec: EntitySpec) -> sql.Composed:
    return sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE id = ANY(%s::uuid[]))").format(
        sql.Identifier(spec.table)
    )

"""The bookings table: bulk upsert from Arrow, rejected records, reads back to Arrow.

Bulk data crosses the wire as CSV made by Arrow's C++ writer and reader
(``COPY ... FORMAT csv`` both ways), so no Python code runs per row and
everything happens on the caller's psycopg connection, inside its transaction.
benchmarks/bench_upsert.py compares this with binary COPY row by row and ADBC.

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
default READ COMMITTED isolation (the merge's snapshot is taken after the locks).
"""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from hostpms_pipeline.booking_schema import BOOKING_KEY, BOOKING_SCHEMA, REJECTED_SCHEMA
from hostpms_pipeline.database import advisory_key

# (year, month, day) of booked_at in UTC; None for bookings without booked_at
# (the transform rejects those; parquet_store keeps them in a null partition).
Partition = tuple[int, int, int] | None

COPY_CHUNK_ROWS = 65_536
MERGE_WORK_MEM = "256MB"
STAGING_TABLE = "booking_staging"
# Columns the store decides; the incoming values are ignored.
STORE_OWNED = ("synced_at", "version")
# Updated from the incoming record whenever it is newer (same state or not).
ALWAYS_REFRESHED = ("source_updated_at", "raw_location", "state_hash")
NEVER_UPDATED = ("id", *BOOKING_KEY)
STATE_UPDATED = tuple(
    name
    for name in BOOKING_SCHEMA.names
    if name not in {*STORE_OWNED, *ALWAYS_REFRESHED, *NEVER_UPDATED, "event_received_at"}
)
BOOKING_KEY_COLUMNS = ("id", *BOOKING_KEY, "version", "state_hash")


@dataclass(frozen=True)
class UpsertStats:
    inserted: int
    updated: int  # version bumped
    unchanged: int  # replay, or newer record with the same state
    stale: int  # older than the stored record, ignored
    # booked_at days holding a row this upsert wrote (a newer same-state record
    # included: its source_updated_at moved), plus the old day when booked_at moved.
    touched_partitions: frozenset[Partition]

    @property
    def total(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.stale


def upsert_bookings(conn: psycopg.Connection, bookings: pa.Table) -> UpsertStats:
    """Merge bookings (BOOKING_SCHEMA, one row per BOOKING_KEY) into ``bookings``.

    One COPY into a temporary staging table, then one INSERT ... ON CONFLICT.
    A key repeated within the batch fails it (CardinalityViolation), writing nothing.
    """
    bookings = bookings.select(BOOKING_SCHEMA.names).cast(BOOKING_SCHEMA)
    hotels = pc.unique(bookings["hotel_id"]).to_pylist()
    with conn.transaction():
        conn.execute(
            sql.SQL("CREATE TEMP TABLE {} (LIKE bookings) ON COMMIT DROP").format(
                sql.Identifier(STAGING_TABLE)
            )
        )
        copy_arrow(conn, STAGING_TABLE, bookings)
        lock_properties(conn, hotels)
        # The merge hash-joins the batch with the stored keys; in memory, not in batches on disk.
        conn.execute(sql.SQL("SET LOCAL work_mem = {}").format(sql.Literal(MERGE_WORK_MEM)))
        row = conn.execute(_MERGE_SQL).fetchone()
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(STAGING_TABLE)))
    assert row is not None
    inserted, updated, unchanged, stale, days = row
    return UpsertStats(
        inserted=inserted,
        updated=updated,
        unchanged=unchanged,
        stale=stale,
        touched_partitions=frozenset(map(_partition, days or ())),
    )


def lock_properties(conn: psycopg.Connection, hotel_ids: Iterable[str]) -> None:
    """Transaction-scoped locks, always taken in key order so two writers cannot deadlock."""
    for key in sorted({advisory_key("bookings", hotel_id) for hotel_id in hotel_ids}):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))


def copy_arrow(conn: psycopg.Connection, table: str, data: pa.Table) -> None:
    """COPY an Arrow table into ``table`` (same column names) as Arrow-written CSV.

    Arrow quotes every string and leaves nulls unquoted and empty, which is what
    PostgreSQL's CSV format reads as NULL versus the empty string. Call it inside
    a transaction: it sets the transaction's time zone to UTC.
    """
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, data.column_names))
    )
    data = _without_time_zones(data)
    options = pa_csv.WriteOptions(include_header=False)
    # The zone-less timestamps written below are UTC wall times.
    conn.execute("SET LOCAL TIME ZONE 'UTC'")
    cursor = conn.cursor()
    # A writer thread sends while Arrow (GIL released) formats the next chunk.
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        for batch in data.to_batches(max_chunksize=COPY_CHUNK_ROWS):
            buffer = io.BytesIO()
            pa_csv.write_csv(batch, buffer, options)
            copy.write(buffer.getbuffer())


def _without_time_zones(data: pa.Table) -> pa.Table:
    """Zone-aware timestamps as their UTC wall time: Arrow's CSV writer formats
    zone-aware values about 30 times slower (tz lookup per value)."""
    fields = [
        pa.field(field.name, pa.timestamp(field.type.unit), field.nullable)
        if pa.types.is_timestamp(field.type) and field.type.tz is not None
        else field
        for field in data.schema
    ]
    return data.cast(pa.schema(fields))


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


def fetch_bookings(
    conn: psycopg.Connection,
    *,
    partitions: Collection[Partition] | None = None,
    hotel_id: str | None = None,
) -> pa.Table:
    """Stored bookings as a BOOKING_SCHEMA table, optionally only some booked_at days or one hotel.

    Ordered by booked_at and key, so a rewritten partition comes out the same every time.
    """
    filters: list[sql.Composable] = []
    params: list[object] = []
    if partitions is not None:
        # A constant array: PostgreSQL hashes it, so many days cost no more than one.
        filters.append(
            sql.SQL(
                "((booked_at AT TIME ZONE 'UTC')::date = ANY(%s::date[]) OR (booked_at IS NULL AND %s))"
            )
        )
        params += [[date(*day) for day in partitions if day is not None], None in partitions]
    if hotel_id is not None:
        filters.append(sql.SQL("hotel_id = %s"))
        params.append(hotel_id)
    where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(filters) if filters else sql.SQL("")
    query = sql.SQL(
        "SELECT {} FROM bookings{} ORDER BY booked_at, source, hotel_id, external_id"
    ).format(sql.SQL(", ").join(map(sql.Identifier, BOOKING_SCHEMA.names)), where)
    return copy_query_to_arrow(conn, query, params, BOOKING_SCHEMA)


def booking_keys(conn: psycopg.Connection, *, hotel_id: str | None = None) -> pa.Table:
    """id, natural key, version and state hash of every stored booking (for PostgreSQL/Parquet checks)."""
    schema = pa.schema([BOOKING_SCHEMA.field(name) for name in BOOKING_KEY_COLUMNS])
    query = sql.SQL("SELECT {} FROM bookings{} ORDER BY source, hotel_id, external_id").format(
        sql.SQL(", ").join(map(sql.Identifier, schema.names)),
        sql.SQL(" WHERE hotel_id = %s") if hotel_id is not None else sql.SQL(""),
    )
    return copy_query_to_arrow(conn, query, [hotel_id] if hotel_id is not None else [], schema)


def booking_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Number of stored bookings per hotel."""
    rows = conn.execute(
        "SELECT hotel_id, count(*) FROM bookings GROUP BY hotel_id ORDER BY hotel_id"
    )
    return {hotel_id: count for hotel_id, count in rows}


def copy_query_to_arrow(
    conn: psycopg.Connection, query: sql.Composable, params: list[object], schema: pa.Schema
) -> pa.Table:
    """Run ``query`` through ``COPY ... TO STDOUT (FORMAT csv)`` and parse it with Arrow into ``schema``."""
    buffer = io.BytesIO()
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    with conn.cursor().copy(statement, params) as copy:
        for chunk in copy:
            buffer.write(chunk)
    if not buffer.getbuffer().nbytes:
        return schema.empty_table()  # Arrow refuses an empty CSV
    buffer.seek(0)
    table = pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(column_names=schema.names),
        convert_options=pa_csv.ConvertOptions(
            column_types=schema,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # "" is an empty string, bare empty is NULL
        ),
    )
    return table.cast(schema)


def _partition(day: date | None) -> Partition:
    return None if day is None else (day.year, day.month, day.day)


def _merge_sql() -> sql.Composed:
    def ident_list(names: Iterable[str]) -> sql.Composed:
        return sql.SQL(", ").join(map(sql.Identifier, names))

    written_by_store = [name for name in BOOKING_SCHEMA.names if name not in STORE_OWNED]
    state_changed = sql.SQL("EXCLUDED.state_hash <> b.state_hash")
    assignments: list[sql.Composable] = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
        for name in (*STATE_UPDATED, *ALWAYS_REFRESHED)
    ]
    assignments += [
        sql.SQL("event_received_at = GREATEST(b.event_received_at, EXCLUDED.event_received_at)"),
        sql.SQL("version = b.version + ({})::integer").format(state_changed),
        sql.SQL("synced_at = CASE WHEN {} THEN EXCLUDED.synced_at ELSE b.synced_at END").format(
            state_changed
        ),
    ]
    # `existing` and `written` share the statement's snapshot (taken after the
    # property locks), so classifying from `existing` matches what `written` did.
    return sql.SQL(
        """
        WITH existing AS (
            SELECT s.source_updated_at AS incoming_updated_at, s.state_hash AS incoming_hash,
                   b.source_updated_at AS stored_updated_at, b.state_hash AS stored_hash,
                   b.booked_at AS stored_booked_at
            FROM {staging} AS s
            LEFT JOIN bookings AS b USING ({key})
        ),
        written AS (
            INSERT INTO bookings AS b ({written_columns}, synced_at, version)
            SELECT {staged_columns}, now(), 1
            FROM {staging} AS s
            LEFT JOIN bookings AS stored USING ({key})
            -- Replays and stale records never reach ON CONFLICT, which would lock
            -- (and so write) every conflicting row even when its WHERE is false.
            WHERE stored.source_updated_at IS NULL OR s.source_updated_at > stored.source_updated_at
            ON CONFLICT ({key}) DO UPDATE SET {assignments}
            WHERE EXCLUDED.source_updated_at > b.source_updated_at
            RETURNING b.booked_at
        ),
        touched AS (
            SELECT booked_at FROM written
            UNION ALL
            SELECT stored_booked_at FROM existing WHERE incoming_updated_at > stored_updated_at
        )
        SELECT
            count(*) FILTER (WHERE stored_updated_at IS NULL),
            count(*) FILTER (WHERE incoming_updated_at > stored_updated_at AND incoming_hash <> stored_hash),
            count(*) FILTER (WHERE incoming_updated_at = stored_updated_at
                             OR (incoming_updated_at > stored_updated_at AND incoming_hash = stored_hash)),
            count(*) FILTER (WHERE incoming_updated_at < stored_updated_at),
            (SELECT array_agg(DISTINCT (booked_at AT TIME ZONE 'UTC')::date) FROM touched)
        FROM existing
        """
    ).format(
        staging=sql.Identifier(STAGING_TABLE),
        key=ident_list(BOOKING_KEY),
        written_columns=ident_list(written_by_store),
        staged_columns=sql.SQL(", ").join(sql.Identifier("s", name) for name in written_by_store),
        assignments=sql.SQL(", ").join(assignments),
    )


_MERGE_SQL = _merge_sql()

"""Upsert throughput into PostgreSQL, and the bulk-load options behind it.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_upsert.py [--rows 100000 1000000] [--url URI]

For each N: synthetic BOOKING_SCHEMA rows; time (1) loading them into a temp table
by pgpq binary COPY (``pg_copy.copy_arrow``, what the store uses), Arrow CSV +
psycopg COPY (what it used before), psycopg binary COPY row by row, and ADBC
``adbc_ingest``; (2) ``upsert_bookings`` into an empty table; (3) a re-upsert
where 10% of the rows carry a newer, different state. Prints rows/s, the CPU
seconds of the server process serving the connection (when the server runs on
this machine) and this process's peak RSS (the server's memory is not included).
Without --url it runs against a throwaway embedded server.
"""

from __future__ import annotations

import argparse
import io
import resource
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import psutil
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql

from benchmarks.postgres_server import postgres_url
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.entities.row_ids import SOURCE
from hostpms_pipeline.entities.schema import MONEY, TIMESTAMP, row_schema
from hostpms_pipeline.warehouse import database, entity_store, pg_copy

Result = TypeVar("Result")
HOTELS = np.array(["PT-LIS-001", "PT-POR-002", "ES-MAD-001"])
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

BOOKING_SCHEMA = row_schema(RESERVATIONS)


def synthetic_bookings(rows: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    index = np.arange(rows)
    booked = np.datetime64("2024-01-01T00:00:00", "us") + rng.integers(
        0, 365 * 86_400, rows
    ).astype("timedelta64[s]")
    check_in = booked.astype("datetime64[D]") + rng.integers(0, 120, rows).astype("timedelta64[D]")
    nights = rng.integers(1, 10, rows).astype(np.int32)
    cents = rng.integers(5_000, 500_000, rows)

    def text(prefix: str) -> pa.Array:
        return pa.array(np.char.add(prefix, index.astype(str)))

    columns = {
        "id": pa.array([str(uuid.UUID(int=i + 1)) for i in range(rows)]),
        "external_id": text("RSV-"),
        "source": pa.array(np.full(rows, SOURCE)),
        "hotel_id": pa.array(HOTELS[index % len(HOTELS)]),
        "guest_name": text("Guest "),
        "guest_email": text("guest@example.pt#"),
        "guest_phone": pa.array(np.full(rows, "+351912345678")),
        "room_number": pa.array((index % 400 + 100).astype(str)),
        "room_type": pa.array(np.full(rows, "Double Room")),
        "room_type_original": pa.array(np.full(rows, "Quarto Duplo")),
        "check_in_date": pa.array(check_in),
        "check_out_date": pa.array(check_in + nights.astype("timedelta64[D]")),
        "booked_at": pa.array(booked).cast(TIMESTAMP),
        "total_amount": money(cents),
        "currency": pa.array(np.full(rows, "EUR")),
        "iva_amount": money(cents * 23 // 123),
        "tourist_tax_amount": money(np.full(rows, 200)),
        "rate_plan": pa.array(np.full(rows, "flexible")),
        "rate_plan_original": pa.array(np.full(rows, "Flexível")),
        "status": pa.array(np.full(rows, "confirmed")),
        "status_original": pa.array(np.full(rows, "confirmado")),
        "channel": pa.array(np.full(rows, "ota")),
        "channel_original": pa.array(np.full(rows, "booking_com")),
        "payment_method": pa.array(np.full(rows, "credit_card")),
        "lead_time": pa.array((check_in - booked.astype("datetime64[D]")).astype(np.int32)),
        "length_of_stay": pa.array(nights),
        "source_updated_at": pa.array(booked + np.timedelta64(1, "h")).cast(TIMESTAMP),
        "event_received_at": pa.nulls(rows, TIMESTAMP),
        "raw_location": pa.array(np.full(rows, "hostpms/PT-LIS-001/polling/bench.json")),
        "state_hash": text("h1-"),
        "synced_at": pa.array(np.full(rows, np.datetime64("2024-01-01", "us"))).cast(TIMESTAMP),
        "version": pa.array(np.ones(rows, np.int32)),
    }
    return pa.table(columns).cast(BOOKING_SCHEMA)


def money(cents: np.ndarray) -> pa.Array:
    whole = (cents // 100).astype(str)
    fraction = np.char.zfill((cents % 100).astype(str), 2)
    return pa.array(np.char.add(np.char.add(whole, "."), fraction)).cast(MONEY)


def with_changes(table: pa.Table, fraction: float) -> pa.Table:
    """Every 1/fraction-th row gets a newer update with a different state; the rest replay."""
    changed = pa.array(np.arange(table.num_rows) % round(1 / fraction) == 0)
    later = pc.add(table["source_updated_at"], pa.scalar(timedelta(days=1)))
    columns = {
        "status": pc.if_else(changed, "cancelled", table["status"]),
        "state_hash": pc.if_else(
            changed,
            pc.binary_join_element_wise("h2-", table["external_id"], ""),
            table["state_hash"],
        ),
        "source_updated_at": pc.if_else(changed, later, table["source_updated_at"]),
    }
    for name, values in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, values)
    return table.cast(BOOKING_SCHEMA)


def timed(
    label: str, rows: int, action: Callable[[], Result], server: psutil.Process | None
) -> Result:
    started, server_before = time.perf_counter(), _cpu_seconds(server)
    result = action()
    elapsed = time.perf_counter() - started
    server_cpu = _cpu_seconds(server) - server_before if server is not None else float("nan")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  {label:<44} {elapsed:7.2f} s {rows / elapsed:>12,.0f} rows/s   server CPU {server_cpu:5.2f} s"
        f"   peak RSS {peak_mb:,.0f} MB"
    )
    return result


def server_process(conn: psycopg.Connection) -> psutil.Process | None:
    """The server process behind ``conn``, if the server runs on this machine."""
    pid = conn.info.backend_pid
    try:
        process = psutil.Process(pid)
        return process if "postgres" in process.name() else None
    except psutil.Error:
        return None


def _cpu_seconds(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def describe(stats: entity_store.UpsertStats) -> str:
    return (
        f"inserted={stats.inserted} updated={stats.updated} unchanged={stats.unchanged}"
        f" stale={stats.stale} partitions={len(stats.touched_partitions)}"
    )


def load_pgpq(conn: psycopg.Connection, table: pa.Table) -> None:
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE load_test (LIKE bookings) ON COMMIT DROP")
        pg_copy.copy_arrow(conn, "load_test", table)


def load_csv(conn: psycopg.Connection, table: pa.Table) -> None:
    """Arrow's CSV writer into ``COPY ... (FORMAT csv)``; zone-aware timestamps as UTC
    wall times (Arrow formats zone-aware values about 30 times slower)."""
    naive = pa.timestamp("us")
    table = table.cast(
        pa.schema([(f.name, naive if f.type == TIMESTAMP else f.type) for f in table.schema])
    )
    names = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    options = pa_csv.WriteOptions(include_header=False)
    with conn.transaction():
        conn.execute("SET LOCAL TIME ZONE 'UTC'")
        conn.execute("CREATE TEMP TABLE load_test (LIKE bookings) ON COMMIT DROP")
        statement = sql.SQL("COPY load_test ({}) FROM STDIN (FORMAT csv)").format(names)
        with conn.cursor().copy(statement) as copy:
            for batch in table.to_batches(max_chunksize=65_536):
                buffer = io.BytesIO()
                pa_csv.write_csv(batch, buffer, options)
                copy.write(buffer.getbuffer())


def load_binary_rows(conn: psycopg.Connection, table: pa.Table) -> None:
    names = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE load_test (LIKE bookings) ON COMMIT DROP")
        types = [
            row[0]
            for row in conn.execute(
                "SELECT atttypid FROM pg_attribute"
                " WHERE attrelid = 'load_test'::regclass AND attnum > 0 ORDER BY attnum"
            )
        ]
        with conn.cursor().copy(
            sql.SQL("COPY load_test ({}) FROM STDIN (FORMAT binary)").format(names)
        ) as copy:
            copy.set_types(types)
            for batch in table.to_batches(max_chunksize=65_536):
                columns = [column.to_pylist() for column in batch.columns]
                columns[0] = [
                    uuid.UUID(value) for value in columns[0]
                ]  # binary uuid wants UUID objects
                for row in zip(*columns, strict=True):
                    copy.write_row(row)


def load_adbc(url: str, table: pa.Table) -> None:
    with adbc.connect(url) as conn, conn.cursor() as cur:
        cur.adbc_ingest("load_test", table, mode="create", temporary=True)
        conn.commit()


def bench(url: str, rows: int, schema: str, compare_loaders: bool) -> None:
    print(f"N = {rows:,}")
    table = synthetic_bookings(rows)
    changed = with_changes(table, 0.10)
    with database.connect(url, schema) as conn:
        server = server_process(conn)
        if compare_loaders:
            timed("load: pgpq binary COPY (used)", rows, lambda: load_pgpq(conn, table), server)
            timed("load: Arrow CSV + psycopg COPY", rows, lambda: load_csv(conn, table), server)
            timed("load: ADBC adbc_ingest (COPY BINARY)", rows, lambda: load_adbc(url, table), None)
            sample = table.slice(0, min(rows, 100_000))
            timed(
                f"load: psycopg binary write_row ({sample.num_rows:,})",
                sample.num_rows,
                lambda: load_binary_rows(conn, sample),
                server,
            )
        stats = timed(
            "upsert into empty table",
            rows,
            lambda: entity_store.upsert(conn, RESERVATIONS, table),
            server,
        )
        print(f"    {describe(stats)}")
        stats = timed(
            "re-upsert, 10% newer and changed",
            rows,
            lambda: entity_store.upsert(conn, RESERVATIONS, changed),
            server,
        )
        print(f"    {describe(stats)}")
        timed(
            "fetch_bookings (all rows to Arrow)",
            rows,
            lambda: entity_store.fetch_rows(conn, RESERVATIONS),
            server,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--url", help="PostgreSQL URI; default: a throwaway embedded server")
    parser.add_argument("--no-loaders", action="store_true", help="skip the bulk-load comparison")
    args = parser.parse_args()
    with postgres_url(args.url) as url:
        for rows in args.rows:
            schema = f"bench_{rows}"
            database.migrate(url, schema)
            try:
                bench(url, rows, schema, compare_loaders=not args.no_loaders)
            finally:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


if __name__ == "__main__":
    main()

"""End-to-end ETL throughput: landed raw files → map → dedup → PostgreSQL upsert → Parquet.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_pipeline.py [--rows 100000 1000000] [--mix] [--url URI]

For each N, into a fresh schema and fresh local raw and processed folders:

1. *first run*: N reservations landed as polling pages (500 a page) in a local raw
   store and recorded in the raw-file ledger, then ``pipeline.process_pending``
   (what the benchmark times) into an empty ``bookings`` table;
2. *update run*: newly landed pages carrying a newer, different state of 10% of
   those bookings, then ``process_pending`` again (the ledger gives only the new files).

With ``--mix`` the N records are the four entities in a realistic mix
(``raw_generator.MIX``: reservations, guests, room status changes, payments), and
each run processes every entity's pending files in turn.

Timing runs from "raw files pending" to "PostgreSQL and Parquet written". Landing
happens in a child process before the clock starts, so neither its time nor its
memory is counted. Peak RSS is this process's high-water mark during the run
(reset before it): the PostgreSQL server's processes are not included. Stage
times overlap (a chunk is prepared while the previous one loads), so they add
up to more than the total. Without --url (or HOSTPMS_DATABASE_URL) it uses a
throwaway embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import psycopg
from psycopg import sql

from benchmarks.postgres_server import postgres_url
from benchmarks.raw_generator import MIX, generate_landed_pages, generate_newer_versions
from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities import BY_COLLECTION
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.warehouse import database, ledger

Result = TypeVar("Result")
UPDATED_FRACTION = 0.10
STAGES = ("read", "map", "deduplicate", "postgres", "parquet")


def collection_sizes(n_records: int, mix: bool) -> dict[str, int]:
    if not mix:
        return {"reservations": n_records}
    return {collection: round(n_records * share) for collection, share in MIX.items()}


def land(url: str, schema: str, raw_root: Path, sizes: dict[str, int], updates: bool) -> int:
    """Store the pages and record them in the ledger, as the landing code does; returns pages landed."""
    store = LocalObjectStore(raw_root)
    landed = 0
    with database.connect(url, schema) as conn, conn.transaction():
        for collection, count in sizes.items():
            pages: Iterable[tuple[str, bytes]] = generate_landed_pages(count, collection=collection)
            if updates:
                pages = generate_newer_versions(
                    generate_landed_pages(count, collection=collection), UPDATED_FRACTION
                )
            id_field = f'"{BY_COLLECTION[collection].id_field}"'.encode()
            for key, body in pages:
                property_id = key.split("/")[1]
                location = store.put(key, body)
                ledger.record_landed_file(
                    conn,
                    location,
                    property_id,
                    "polling",
                    collection,
                    body.count(id_field),
                    datetime.now(UTC),
                )
                landed += 1
    return landed


def in_child(function: Callable[..., Result], *args: object) -> Result:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(function, *args).result()


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current RSS


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def run(
    label: str,
    url: str,
    schema: str,
    raw_root: Path,
    processed: Path,
    records: int,
    collections: list[str],
) -> None:
    store = LocalObjectStore(raw_root)
    tables = load_mapping_tables()
    stages: dict[str, float] = {}
    specs = [BY_COLLECTION[collection] for collection in collections]
    with database.connect(url, schema) as conn:
        pending = len(ledger.pending_files(conn))
        reset_peak_rss()
        before = rss_mb("VmRSS")
        began = time.perf_counter()
        results = {
            spec.table: pipeline.process_pending(
                spec, store, conn, str(processed), tables, stage_seconds=stages
            )
            for spec in specs
        }
        elapsed = time.perf_counter() - began
        peak = rss_mb("VmHWM")
        stored = {
            spec.table: conn.execute(
                sql.SQL("SELECT count(*), count(*) FILTER (WHERE version > 1) FROM {}").format(
                    sql.Identifier(spec.table)
                )
            ).fetchone()
            for spec in specs
        }
    figures = "  ".join(f"{name} {stages.get(name, 0.0):5.2f}" for name in STAGES)
    print(
        f"  {label:<13} {records:>9,} records, {pending:>5,} files: {figures}  |"
        f" total {elapsed:6.2f} s = {records / elapsed:>9,.0f} records/s;"
        f" peak RSS {peak:,.0f} MB (before {before:,.0f} MB)"
    )
    for spec in specs:
        inserted = sum(r.stats.inserted for r in results[spec.table])
        updated = sum(r.stats.updated for r in results[spec.table])
        rows, past_one = stored[spec.table]
        parquet_rows = parquet_store.dataset_summary(str(processed), spec).row_count
        print(
            f"  {'':<13} {spec.table}: inserted {inserted:,}, updated {updated:,};"
            f" PostgreSQL {rows:,} ({past_one:,} past version 1), Parquet {parquet_rows:,} rows"
        )
        if parquet_rows != rows:
            raise SystemExit(f"Parquet and PostgreSQL disagree on {spec.table}")


def bench(url: str, n_records: int, mix: bool) -> None:
    sizes = collection_sizes(n_records, mix)
    print(f"N = {n_records:,}: " + ", ".join(f"{n:,} {c}" for c, n in sizes.items()))
    schema = f"bench_pipeline_{n_records}"
    database.migrate(url, schema)
    try:
        with tempfile.TemporaryDirectory() as folder:
            raw_root, processed = Path(folder) / "raw", Path(folder) / "processed"
            in_child(land, url, schema, raw_root, sizes, False)
            run("first run", url, schema, raw_root, processed, n_records, list(sizes))
            in_child(land, url, schema, raw_root, sizes, True)
            # About: each record is drawn with that chance.
            updates = round(n_records * UPDATED_FRACTION)
            run("10% updated", url, schema, raw_root, processed, updates, list(sizes))
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--mix", action="store_true", help="the four entities, not reservations alone"
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("HOSTPMS_DATABASE_URL"),
        help="PostgreSQL URI; default: HOSTPMS_DATABASE_URL, else a throwaway embedded server",
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; stage times in seconds, overlapping")
    with postgres_url(args.url) as url:
        for n_records in args.rows:
            # Each N in a fresh process, so one N's peak memory is not another's baseline.
            in_child(bench, url, n_records, args.mix)


if __name__ == "__main__":
    main()

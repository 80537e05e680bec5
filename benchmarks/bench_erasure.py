"""Time to erase one guest from a database of N bookings and its raw store (GDPR item 1).

    HOSTPMS_GDPR_KEY=... PYTHONPATH=. .venv/bin/python benchmarks/bench_erasure.py [--rows 1000000] [--url URI]

N reservations are landed as polling pages (500 a page) in a local raw store and loaded
through ``pipeline.process_pending`` into PostgreSQL and Parquet (not timed). Then one
guest, named by email, is erased with ``gdpr.erasure.erase`` (timed): suppression, raw
store scan and redaction, PostgreSQL (every table's identifier columns hashed and matched),
Parquet rewrite of the touched days. Without --url it uses a throwaway embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import orjson
import psycopg
from psycopg import sql

from benchmarks.bench_pipeline import in_child, land
from benchmarks.postgres_server import postgres_url
from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.gdpr.erasure import PersonRef, erase
from hostpms_pipeline.gdpr.keys import current_hasher
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.warehouse import database


def bench(url: str, n_records: int) -> None:
    schema = f"bench_erasure_{n_records}"
    database.migrate(url, schema)
    try:
        with tempfile.TemporaryDirectory() as folder:
            raw_root, processed = Path(folder) / "raw", Path(folder) / "processed"
            in_child(land, url, schema, raw_root, {"reservations": n_records}, False)
            store = LocalObjectStore(raw_root)
            began = time.perf_counter()
            with database.connect(url, schema) as conn:
                pipeline.process_pending(
                    RESERVATIONS, store, conn, str(processed), load_mapping_tables()
                )
                (bookings,) = conn.execute("SELECT count(*) FROM bookings").fetchone()
            loaded = time.perf_counter() - began
            first = next(iter(store.list("hostpms/")))
            email = orjson.loads(store.get(first.key))["data"][0]["guest"]["email"]
            files = sum(1 for _ in store.list("hostpms/"))
            print(f"loaded {bookings:,} bookings from {files:,} raw files in {loaded:.1f} s")
            hasher = current_hasher()
            person = PersonRef.of(hasher, "email", email)
            began = time.perf_counter()
            report = erase(lambda: database.connect(url, schema), store, str(processed), hasher,
                           person, "bench")  # fmt: skip
            elapsed = time.perf_counter() - began
            print(f"erased one guest in {elapsed:.1f} s: {report.counts}")
            began = time.perf_counter()
            erase(
                lambda: database.connect(url, schema),
                store,
                str(processed),
                hasher,
                person,
                "bench",
            )
            print(f"run again (nothing left to erase): {time.perf_counter() - began:.1f} s")
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default=os.environ.get("HOSTPMS_DATABASE_URL"))
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")
    with postgres_url(args.url) as url:
        in_child(bench, url, args.rows)


if __name__ == "__main__":
    main()

"""The local engine against the Spark engine (``local[2]``) on the same landed reservations.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_engines.py [--rows 1000000 10000000]
        [--engines local spark] [--url URI]

For each N: N reservations landed as polling pages (500 a page) in a local raw store
and recorded in the raw-file ledger (not timed), then, for each engine in a fresh
process, a fresh schema and processed folder, everything pending through map,
reject, dedup, the PostgreSQL upsert and the Parquet export (timed):
``pipeline.process_pending`` for the local engine, ``SparkEngine.process_pending``
for Spark (its session started before the clock).

Figures: wall time; CPU seconds of the whole process tree (the engine's process,
Spark's JVM and its Python workers), and apart from it the PostgreSQL server's
(when it runs on this machine); peak memory as the highest sum of the tree's resident sets, sampled
every 0.2 s (the server's not included).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

from benchmarks.bench_pipeline import in_child, land
from benchmarks.postgres_server import postgres_url
from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.warehouse import database, ledger


class TreeMonitor:
    """CPU seconds and peak resident memory of this process and all its descendants."""

    def __init__(self) -> None:
        self.root = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _tree(self) -> list[psutil.Process]:
        return [self.root, *self.root.children(recursive=True)]

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            total = 0
            for process in self._tree():
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)

    def cpu_seconds(self) -> float:
        seconds = 0.0
        for process in self._tree():
            try:
                # children_*: workers that have ended, once their parent reaped them.
                times = process.cpu_times()
                seconds += times.user + times.system + times.children_user + times.children_system
            except psutil.Error:
                pass
        return seconds

    def __enter__(self) -> TreeMonitor:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def postgres_server(url: str) -> psutil.Process | None:
    """The server's postmaster, found by its data directory (None if not on this machine)."""
    with psycopg.connect(url) as conn:
        (data_directory,) = conn.execute("SHOW data_directory").fetchone()
    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if (process.info["name"] or "").startswith("postgres") and data_directory in cmdline:
            return process
    return None


def postgres_server_cpu(postmaster: psutil.Process | None) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster, its live processes and the
    backends that have ended (reaped by it)."""
    seconds = 0.0
    for process in [postmaster, *postmaster.children(recursive=True)] if postmaster else []:
        try:
            times = process.cpu_times()
            seconds += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return seconds


def _spark_engine(staging: Path):
    from dagster_pyspark.resources import spark_session_from_config

    from hostpms_pipeline.engine.spark.engine import SparkEngine
    from hostpms_pipeline.engine.spark.java import check_java
    from hostpms_pipeline.engine.spark.session import (
        spark_config,
        use_this_python_for_local_workers,
    )
    from hostpms_pipeline.engine.spark.tasks import warm_up

    check_java()
    config = spark_config("local[2]")
    config["spark.driver.memory"] = "4g"
    use_this_python_for_local_workers(config)
    began = time.perf_counter()
    session = spark_session_from_config(config)
    # The JVM and the Python workers (with the engine's modules imported) start before the
    # clock, as in a long-running deployment that keeps its session.
    session.createDataFrame([(i,) for i in range(2)], "x long").repartition(2).mapInArrow(
        warm_up, "x long"
    ).collect()
    print(
        f"  spark: session and workers started in {time.perf_counter() - began:.0f} s (not timed)"
    )
    return SparkEngine(session, str(staging))


def run_engine(engine_name: str, url: str, raw_root: Path, records: int) -> str:
    """One engine over every pending file, in a fresh schema; returns its figure line."""
    schema = f"bench_engines_{engine_name}_{records}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    database.migrate(url, schema)
    with database.connect(url, schema) as conn, conn.transaction():
        # The ledger of the landing schema, copied: both engines see the same pending files.
        conn.execute(
            sql.SQL("INSERT INTO raw_files SELECT * FROM {}.raw_files").format(
                sql.Identifier(f"bench_engines_raw_{records}")
            )
        )
    with tempfile.TemporaryDirectory() as folder:
        processed = Path(folder) / "processed"
        engine = _spark_engine(Path(folder) / "staging") if engine_name == "spark" else pipeline
        store = LocalObjectStore(raw_root)
        tables = load_mapping_tables()
        stages: dict[str, float] = {}
        with database.connect(url, schema) as conn, TreeMonitor() as monitor:
            server = postgres_server(url)
            cpu_before, server_before = monitor.cpu_seconds(), postgres_server_cpu(server)
            began = time.perf_counter()
            engine.process_pending(
                RESERVATIONS, store, conn, str(processed), tables, stage_seconds=stages
            )
            elapsed = time.perf_counter() - began
            cpu = monitor.cpu_seconds() - cpu_before
            server_cpu = postgres_server_cpu(server) - server_before
            stored = conn.execute("SELECT count(*) FROM bookings").fetchone()[0]
            left = len(ledger.pending_files(conn))
        parquet_rows = parquet_store.dataset_summary(str(processed), RESERVATIONS).row_count
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    if parquet_rows != stored or left:
        raise SystemExit(
            f"{engine_name}: Parquet {parquet_rows} != PostgreSQL {stored}, {left} left"
        )
    figures = "  ".join(f"{name} {seconds:6.1f}" for name, seconds in stages.items())
    return (
        f"  {engine_name:<6} {records:>11,} records: wall {elapsed:7.1f} s"
        f" ({records / elapsed:>8,.0f} records/s), CPU {cpu:7.1f} s"
        f" (+ PostgreSQL server {server_cpu:5.1f} s),"
        f" peak memory {monitor.peak / 2**30:5.2f} GiB; {stored:,} bookings; stages: {figures}"
    )


def bench(url: str, records: int, engines: list[str]) -> None:
    print(f"N = {records:,} reservations", flush=True)
    landing = f"bench_engines_raw_{records}"
    database.migrate(url, landing)
    try:
        with tempfile.TemporaryDirectory() as folder:
            raw_root = Path(folder) / "raw"
            began = time.perf_counter()
            pages = in_child(land, url, landing, raw_root, {"reservations": records}, False)
            print(f"  landed {pages:,} pages in {time.perf_counter() - began:.0f} s (not timed)")
            for engine_name in engines:
                print(in_child(run_engine, engine_name, url, raw_root, records), flush=True)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(landing)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["local", "spark"])
    parser.add_argument("--url", default=os.environ.get("HOSTPMS_DATABASE_URL"))
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB", flush=True)
    with postgres_url(args.url) as url:
        for records in args.rows:
            bench(url, records, args.engines)


if __name__ == "__main__":
    main()

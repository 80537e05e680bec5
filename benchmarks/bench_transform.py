"""Throughput of read_landed + to_rows + deduplicate on generated landed pages.

    .venv/bin/python -m benchmarks.bench_transform            # N = 100k and 1M
    .venv/bin/python -m benchmarks.bench_transform 250000     # chosen sizes

Prints records/s per step and the process's peak RSS. The pages are generated
before timing starts (10% updated states, 0.1% malformed records).
"""

from __future__ import annotations

import resource
import sys
import time
from datetime import UTC, datetime

from benchmarks.raw_generator import generate_landed_pages
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.engine.reading import read_landed
from hostpms_pipeline.engine.transform import deduplicate, to_rows
from hostpms_pipeline.entities import RESERVATIONS


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench(n_records: int) -> None:
    files = list(generate_landed_pages(n_records, updated_fraction=0.1, bad_fraction=0.001))
    megabytes = sum(len(body) for _, body in files) / 1e6
    tables = load_mapping_tables()
    began = time.perf_counter()
    raw = read_landed(RESERVATIONS, files)
    read_done = time.perf_counter()
    bookings, rejected = to_rows(RESERVATIONS, raw, tables, datetime.now(UTC))
    mapped_done = time.perf_counter()
    unique = deduplicate(bookings)
    finished = time.perf_counter()
    print(
        f"N={n_records:>9,} ({megabytes:,.0f} MB JSON, {len(files):,} pages): "
        f"read {read_done - began:.2f} s, to_rows {mapped_done - read_done:.2f} s, "
        f"deduplicate {finished - mapped_done:.2f} s, total {finished - began:.2f} s = "
        f"{n_records / (finished - began):,.0f} records/s; "
        f"{unique.num_rows:,} bookings, {rejected.num_rows:,} rejected; peak RSS {_peak_rss_mb():,.0f} MB"
    )


if __name__ == "__main__":
    sizes = [int(arg) for arg in sys.argv[1:]] or [100_000, 1_000_000]
    for size in sizes:
        bench(size)

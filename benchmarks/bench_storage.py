"""Time the local raw landing store: durable put latency and listing throughput.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_storage.py [objects]
Prints put latency percentiles (each put is fsynced) and seconds to list every key.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from hostpms_pipeline.lake.storage import LocalObjectStore

PAYLOAD = b'{"reservation": "' + b"x" * 20_000 + b'"}'  # about one page of reservations


def main() -> None:
    object_count = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000
    with tempfile.TemporaryDirectory() as folder:
        store = LocalObjectStore(Path(folder))
        latencies = []
        for index in range(object_count):
            started = time.perf_counter()
            store.put(f"hostpms/PT-LIS-001/2026/03/05/{index:08d}.json", PAYLOAD)
            latencies.append(time.perf_counter() - started)
        cuts = statistics.quantiles(latencies, n=100)
        print(f"{object_count} puts of {len(PAYLOAD)} bytes")
        print(f"put p50: {cuts[49] * 1000:.2f} ms, p99: {cuts[98] * 1000:.2f} ms")
        started = time.perf_counter()
        listed = sum(1 for _ in store.list("hostpms/"))
        print(f"list of {listed} keys: {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    main()

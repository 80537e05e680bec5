"""Polling under HostPMS's real rate limit: how close to the bound the limit sets.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_polling.py [--reservations-per-property 10900] [--url URI]

One property with about 10,000 visible reservations in an in-process simulator that
enforces the contract's 100 requests/min per (client, endpoint); a full incremental
sync (landing every page in a temporary folder, checkpoints and the shared request
schedule in PostgreSQL) with 100 records per page. The bound for R requests at
100/min is R × 0.6 s; the script prints the wall time against it, the requests per
minute achieved and how many requests HostPMS refused (429). Without --url it runs
against a throwaway embedded PostgreSQL server. Generating the data takes ~15 s and
is not timed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import Credentials, HostPMSClient
from hostpms_pipeline.hostpms.rate_limiter import PostgresRateLimiter, RateLimit
from hostpms_pipeline.ingest import polling
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET
from hostpms_pipeline.simulator import HostPMSSimulator, SimulatorConfig, run_in_background
from hostpms_pipeline.warehouse import database

PROPERTY = "PT-LIS-001"
PAGE_LIMIT = 100
LIMIT = RateLimit()  # the contract's 100 requests per minute


def bench(url: str, reservations_per_property: int, folder: Path) -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    database.migrate(url, schema)
    connect = partial(database.connect, url, schema)
    config = SimulatorConfig(
        property_ids=(PROPERTY,), reservations_per_property=reservations_per_property
    )
    began = time.perf_counter()
    simulator = HostPMSSimulator(config)
    visible = len(
        simulator.dataset.timeline(PROPERTY, "reservations").latest_keys(simulator.clock.now())
    )
    print(
        f"simulator: {visible} visible reservations, generated in {time.perf_counter() - began:.1f} s"
    )
    with run_in_background(simulator) as running:
        client = HostPMSClient(
            running.base_url,
            Credentials(SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET),
            page_limit=PAGE_LIMIT,
            limiter=PostgresRateLimiter(connect, LIMIT),
        )
        store = LocalObjectStore(folder / "raw")
        began = time.perf_counter()
        with client:
            result = polling.sync_incremental(client, store, connect, PROPERTY)
        wall = time.perf_counter() - began
        counts = simulator.state()["request_counts"]
    requests = sum(row["served"] for row in counts if row["endpoint"] == "reservations")
    refused = sum(row["refused"] for row in counts)
    bound = requests * LIMIT.window_seconds / LIMIT.requests
    print(
        f"polled {result.records} reservations in {requests} requests ({result.pages} pages landed)"
    )
    print(f"wall time        {wall:7.1f} s")
    per_request = bound / requests
    print(
        f"bound at {contract.RATE_LIMIT_PER_MINUTE}/min  {bound:7.1f} s  ({requests} × {per_request:.2f} s)"
    )
    print(f"over the bound   {100 * (wall / bound - 1):+7.1f} %")
    print(f"requests/min     {requests / wall * 60:7.1f}")
    print(f"429s             {refused:7d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reservations-per-property", type=int, default=10_900)
    parser.add_argument("--url", help="PostgreSQL URL (default: a throwaway embedded server)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.url:
            bench(args.url, args.reservations_per_property, Path(folder))
            return
        server = database.embedded_server(Path(folder) / "data", cleanup_mode="delete")
        try:
            bench(server.get_uri(), args.reservations_per_property, Path(folder))
        finally:
            server.cleanup()


if __name__ == "__main__":
    main()

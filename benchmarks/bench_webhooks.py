"""The webhook receiver under load: 1,000 signed deliveries per second for 60 s.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_webhooks.py [--rate 1000] [--seconds 60]

Starts a throwaway embedded PostgreSQL (idempotency) and ``hostpms serve-webhooks`` as a
subprocess with a raw store in a temporary folder, then drives it over loopback with
wrk (open loop: each request leaves at its scheduled time). wrk's LuaJIT has no HMAC,
so every delivery is signed here just before the run (timestamps are checked to 300 s)
and written to a file that ``webhook_load.lua`` sends. A share of the deliveries repeat
an event sent about two seconds earlier, as HostPMS's retries do.

Prints the rate achieved, p50/p95/p99/max latency (wrk's, from the request's first byte
written to its answer), errors by kind, the answers by outcome, and then checks that
every event landed exactly once: the files in the raw store are the unique events sent,
no event twice, and every key in PostgreSQL is marked landed. Exits 1 if a target
(p99 < 100 ms, exactly once, no errors) is missed.

Needs wrk: ``apt-get install -y wrk`` (Debian/Ubuntu) or ``brew install wrk``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import psycopg

from benchmarks.postgres_server import postgres_url
from benchmarks.webhook_traffic import (
    PROPERTY_IDS,
    receiver_environment,
    reservation_event,
    running_receiver,
    signed_headers,
    utc_now,
    webhook_path,
)
from hostpms_pipeline.hostpms import contract

LUA_SCRIPT = Path(__file__).with_name("webhook_load.lua")
DUPLICATE_EVERY = 50  # one delivery in 50 repeats an earlier event (2 %)
DUPLICATE_DISTANCE = 2_000  # ... sent this many deliveries (about 2 s) before
P99_TARGET_MS = 100.0
WRK_THREADS = 2
WRK_CONNECTIONS = 64


@dataclass(frozen=True)
class Plan:
    lines: list[str]
    unique_event_ids: set[str]
    duplicates: int


def plan_deliveries(total: int) -> Plan:
    """``total`` signed deliveries, every DUPLICATE_EVERY-th a repeat of an earlier one."""
    now = utc_now()
    timestamp = int(now.timestamp())
    bodies: list[tuple[str, bytes]] = []
    event_ids: set[str] = set()
    lines = []
    for index in range(total):
        if index % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and index >= DUPLICATE_DISTANCE:
            path, body = bodies[index - DUPLICATE_DISTANCE]
        else:
            property_id = PROPERTY_IDS[index % len(PROPERTY_IDS)]
            event_id = f"evt_bench{index:08d}"
            body = reservation_event(event_id, f"RSV-B{index:08d}", property_id, now)
            path = webhook_path(property_id)
            event_ids.add(event_id)
        bodies.append((path, body))
        headers = signed_headers(body, timestamp)
        signature = headers[contract.HEADER_SIGNATURE]
        lines.append(f"{path}\t{timestamp}\t{signature}\t{body.decode()}")
    return Plan(lines, event_ids, total - len(event_ids))


def run_wrk(base_url: str, requests_file: Path, total: int, rate: int, seconds: int) -> dict:
    # wrk stops by itself once every delivery is answered; -d is only a safety net.
    command = [
        "wrk",
        f"-t{WRK_THREADS}",
        f"-c{WRK_CONNECTIONS}",
        f"-d{seconds + 60}s",
        "--timeout",
        f"{contract.WEBHOOK_DELIVERY_TIMEOUT_SECONDS}s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
        "--",
        str(requests_file),
        str(rate),
        str(WRK_THREADS),
    ]
    print("$ " + " ".join(command))
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result_line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return json.loads(result_line.removeprefix("RESULT "))


def landed_event_ids(raw_root: Path) -> list[str]:
    """The event id of every landed file (keys end in ``{stamp}_{event_id}.json``)."""
    return [path.stem.split("_", 1)[1] for path in raw_root.rglob("*.json")]


def idempotency_states(database_url: str) -> Counter[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT state, count(*) FROM webhook_events GROUP BY state").fetchall()
    return Counter({state: count for state, count in rows})


def report(result: dict, plan: Plan, landed: list[str], states: Counter[str]) -> bool:
    seconds = result["sending_ms"] / 1000
    errors = result["errors"]
    error_count = sum(errors.values())
    p99_ms = result["p99_us"] / 1000
    copies = Counter(landed)
    twice = sum(1 for count in copies.values() if count > 1)
    missing = len(plan.unique_event_ids - copies.keys())
    unexpected = len(copies.keys() - plan.unique_event_ids)
    rate = result["requests"] / seconds
    print(
        f"requests         {result['requests']:8d} in {seconds:.1f} s (first sent to last answered) = {rate:.0f}/s"
    )
    for name in ("p50", "p95", "p99", "max"):
        print(f"latency {name:<8} {result[f'{name}_us'] / 1000:8.1f} ms")
    print(f"errors           {error_count:8d}  {errors}")
    print(
        f"answers          accepted {result['accepted']}, duplicate {result['duplicate']},"
        f" in flight (409) {result['in_flight']}, other {result['other']}"
    )
    print(
        f"sent             {len(plan.unique_event_ids)} unique events + {plan.duplicates} repeated deliveries"
    )
    print(
        f"landed files     {len(landed):8d}  (events landed twice: {twice}, missing: {missing}, unexpected: {unexpected})"
    )
    print(f"idempotency keys {dict(states)}")
    exactly_once = (
        len(landed) == len(plan.unique_event_ids)
        and twice == missing == unexpected == 0
        and states == Counter({"landed": len(plan.unique_event_ids)})
    )
    met = p99_ms < P99_TARGET_MS and exactly_once and error_count == 0 and result["other"] == 0
    print(
        f"targets          p99 < {P99_TARGET_MS:.0f} ms: {p99_ms < P99_TARGET_MS}; exactly once: {exactly_once}"
    )
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1_000, help="deliveries per second")
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk")
    total = args.rate * args.seconds
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as temp:
        folder = Path(temp)
        with postgres_url() as database_url:
            environment = receiver_environment(folder, database_url)
            log_path = folder / "receiver.log"
            with running_receiver(environment, log_path) as base_url:
                plan = plan_deliveries(total)  # just before the run: timestamps age from here
                requests_file = folder / "requests.tsv"
                requests_file.write_text("\n".join(plan.lines) + "\n")
                result = run_wrk(base_url, requests_file, total, args.rate, args.seconds)
            met = report(
                result, plan, landed_event_ids(folder / "raw"), idempotency_states(database_url)
            )
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()

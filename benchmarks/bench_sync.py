"""The whole sync, timed as a user runs it: HostPMS API to PostgreSQL (and Parquet).

Starts a bulk HostPMS server in its own process (``benchmarks/bulk_hostpms.py``: the
contract's endpoints, records pre-serialized, never the bottleneck) and a private
PostgreSQL with default durability (fsync on, synchronous_commit on), then for every run
and phase times each tool as a whole process, the tools interleaved:

- ``project``: ``.venv/bin/hostpms sync`` (``--timings`` when the command has it);
- ``dagster``: the same job through ``dagster job execute`` for the live partition, run
  again while raw files are left pending (as ``hostpms sync`` does);
- ``hand``: a straightforward loader (``benchmarks/hand_loader.py``: httpx, pydantic per
  record, psycopg ``executemany`` upsert, commit per page);
- ``dlt``: dlt 1.x with an incremental ``updated_at`` cursor and ``merge`` on the id, once
  per loader file format in ``--dlt-formats`` (its own venv, ``benchmarks/.venv-dlt``,
  created on first use); the ratio is taken against the best format.

Phases per run: first load (empty database and a fresh HOSTPMS_HOME / pipelines dir per
tool), 10 % changed (a random 10 % of every collection gets a newer state and updated_at
in the last hour), nothing changed. Every tool has its own database in the same server.
After each phase every tool's row count is checked against the server's.

Prints per tool and phase: wall time (median and range), peak RSS of the process tree
(psutil samples), CPU user/sys, the per-stage split of ``hostpms sync --timings`` (its
last stderr line, ``timings {json}``; Dagster's start/run overhead = wall − stages), and
the ratios project/hand and project/dlt of the same runs.

    .venv/bin/python -m benchmarks.bench_sync --rows 100000 --runs 3
    .venv/bin/python -m benchmarks.bench_sync --rows 1000000 --runs 1 --tools project,hand
    .venv/bin/python -m benchmarks.bench_sync --rows 100000 --entities all
    .venv/bin/python -m benchmarks.bench_sync --rate-limited   # 10,000 at limit=100, 100/min

``--keep DIR`` keeps the work folder (logs of every process: DIR/logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from benchmarks.bulk_hostpms import ALL_ENTITIES_SHARE, CLIENT_ID, CLIENT_SECRET
from benchmarks.postgres_server import postgres_url
from benchmarks.process_meter import Measured, measure
from hostpms_pipeline.entities import ENTITIES

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
DLT_VENV = ROOT / "benchmarks" / ".venv-dlt"
DLT_REQUIREMENTS = ["dlt[postgres,parquet]>=1.31", "adbc-driver-postgresql"]
PHASES = ("first load", "10% changed", "nothing changed")
TIMINGS_PREFIX = "timings "
PROJECT_TABLES = {spec.collection: spec.table for spec in ENTITIES}
HAND_TABLES = {collection: f"hand_{collection}" for collection in PROJECT_TABLES}
SERVER_START_TIMEOUT = 600.0


# --- servers ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class BulkServer:
    root_url: str

    @property
    def base_url(self) -> str:
        return self.root_url + "/v3"

    def control(self, action: str, **params: object) -> dict:
        response = httpx.post(f"{self.root_url}/_bench/{action}", params=params, timeout=600)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return httpx.get(f"{self.root_url}/_bench/stats", timeout=60).json()


@contextmanager
def bulk_server(
    rows: int, entities: str, properties: str, log_dir: Path, rate_limit: int | None = None
) -> Iterator[BulkServer]:
    port = _free_port()
    command = [
        sys.executable, "-m", "benchmarks.bulk_hostpms", "--rows", str(rows),
        "--entities", entities, "--properties", properties, "--port", str(port),
    ]  # fmt: skip
    if rate_limit:
        command += ["--rate-limit", str(rate_limit)]
    log_dir.mkdir(parents=True, exist_ok=True)
    with (log_dir / f"bulk-server-{port}.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    server = BulkServer(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"bulk server exited: see {log_dir}")
            try:
                server.stats()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def host_in_netloc(url: str) -> str:
    """The same URL with a Unix-socket ``?host=/dir`` moved into the host part (dlt needs one)."""
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [None])[0]
    if host is None:
        return url
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{quote(host, safe='')}", query=""))


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(admin_url, name)


def durability(admin_url: str) -> str:
    with psycopg.connect(admin_url) as conn:
        shown = {
            name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
            for name in ("server_version", "fsync", "synchronous_commit", "full_page_writes")
        }
    return ", ".join(f"{name}={value}" for name, value in shown.items())


def count_rows(url: str, table: str) -> int | None:
    try:
        with psycopg.connect(url) as conn:
            return conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))
            ).fetchone()[0]
    except psycopg.Error:
        return None


# --- tools -----------------------------------------------------------------------------


@dataclass
class Scenario:
    admin_url: str
    server: BulkServer
    work: Path
    properties: str
    entities: str
    page_limit: int = 500
    rate_limit_per_minute: int = 100_000_000

    @property
    def collections(self) -> list[str]:
        return list(PROJECT_TABLES) if self.entities == "all" else ["reservations"]


def _timings(stderr: str) -> dict[str, float] | None:
    for line in reversed(stderr.splitlines()):
        if line.startswith(TIMINGS_PREFIX):
            try:
                parsed = json.loads(line[len(TIMINGS_PREFIX) :])
            except json.JSONDecodeError:
                return None
            return {str(stage): float(seconds) for stage, seconds in parsed.items()}
    return None


def _clean_environ() -> dict[str, str]:
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("HOSTPMS_", "DAGSTER_", "DESTINATION__", "NORMALIZE__"))
    }


@dataclass
class Outcome:
    measured: Measured
    stages: dict[str, float] | None
    runs: int = 1  # processes run (dagster: one per run of the job)


class Tool:
    name: str

    def reset(self, scenario: Scenario) -> None:
        """Empty database and state: before a first load."""
        raise NotImplementedError

    def run(self, scenario: Scenario, log_dir: Path, label: str) -> Outcome:
        raise NotImplementedError

    def rows(self, scenario: Scenario) -> dict[str, int | None]:
        raise NotImplementedError


class ProjectTool(Tool):
    """``hostpms sync`` as a user runs it."""

    name = "project"
    database = "bench_project"

    def __init__(self) -> None:
        self.url = ""
        self.home = Path()
        self.timings_flag = (
            "--timings"
            in subprocess.run(
                [str(VENV_BIN / "hostpms"), "sync", "--help"], capture_output=True, text=True
            ).stdout
        )

    def reset(self, scenario: Scenario) -> None:
        self.url = fresh_database(scenario.admin_url, self.database)
        self.home = scenario.work / self.name / "home"
        shutil.rmtree(self.home.parent, ignore_errors=True)
        self.home.mkdir(parents=True)

    def env(self, scenario: Scenario) -> dict[str, str]:
        return {
            **_clean_environ(),
            "HOSTPMS_API_BASE_URL": scenario.server.base_url,
            "HOSTPMS_CLIENT_ID": CLIENT_ID,
            "HOSTPMS_CLIENT_SECRET": CLIENT_SECRET,
            "HOSTPMS_DATABASE_URL": self.url,
            "HOSTPMS_HOME": str(self.home),
            "HOSTPMS_PROPERTY_IDS": scenario.properties,
            "HOSTPMS_PAGE_LIMIT": str(scenario.page_limit),
            "HOSTPMS_RATE_LIMIT_PER_MINUTE": str(scenario.rate_limit_per_minute),
        }

    def run(self, scenario: Scenario, log_dir: Path, label: str) -> Outcome:
        command = [str(VENV_BIN / "hostpms"), "sync", *(["--timings"] if self.timings_flag else [])]
        measured = measure(command, self.env(scenario), log_dir, label)
        return Outcome(measured, _timings(measured.stderr))

    def rows(self, scenario: Scenario) -> dict[str, int | None]:
        return {c: count_rows(self.url, PROJECT_TABLES[c]) for c in scenario.collections}


class DagsterTool(ProjectTool):
    """The same job through Dagster's own command, for the live partition of each property."""

    name = "dagster"
    database = "bench_dagster"
    max_runs = 100

    def run(self, scenario: Scenario, log_dir: Path, label: str) -> Outcome:
        from dagster import DagsterInstance

        from hostpms_pipeline.defs.partitions import live_partition_key, register_properties

        dagster_home = self.home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "instance" / "dagster.yaml", dagster_home / "dagster.yaml")
        # Before the clock, as the hostpms_property_partitions sensor or `hostpms connect`
        # would have: the property dimension is dynamic.
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            register_properties(instance, scenario.properties.split(","))
        env = {**self.env(scenario), "DAGSTER_HOME": str(dagster_home)}
        outcomes: list[Outcome] = []
        for property_id in scenario.properties.split(","):
            tags = json.dumps({"dagster/partition": str(live_partition_key(property_id))})
            command = [
                str(VENV_BIN / "dagster"), "job", "execute", "-m", "hostpms_pipeline.definitions",
                "-j", "hostpms_sync_job", "--tags", tags,
            ]  # fmt: skip
            while len(outcomes) < self.max_runs:  # while raw files are left pending
                measured = measure(command, env, log_dir, f"{label}-{len(outcomes)}")
                outcomes.append(Outcome(measured, _timings(measured.stderr)))
                if measured.returncode != 0 or not self.pending(property_id):
                    break
        return _combine(outcomes)

    def pending(self, property_id: str) -> int:
        with psycopg.connect(self.url) as conn:
            return conn.execute(
                "SELECT count(*) FROM raw_files WHERE processed_at IS NULL AND property_id = %s",
                (property_id,),
            ).fetchone()[0]


def _combine(outcomes: list[Outcome]) -> Outcome:
    """Several processes run one after the other, as one: times and CPU add, peaks max."""
    first = outcomes[0].measured
    stages: dict[str, float] | None = None
    for outcome in outcomes:
        if outcome.stages is not None:
            stages = stages or {}
            for stage, seconds in outcome.stages.items():
                stages[stage] = stages.get(stage, 0.0) + seconds
    measured = Measured(
        command=first.command,
        returncode=next((o.measured.returncode for o in outcomes if o.measured.returncode), 0),
        wall=sum(o.measured.wall for o in outcomes),
        peak_rss=max(o.measured.peak_rss for o in outcomes),
        user=sum(o.measured.user for o in outcomes),
        sys=sum(o.measured.sys for o in outcomes),
        stdout="".join(o.measured.stdout for o in outcomes),
        stderr="".join(o.measured.stderr for o in outcomes),
    )
    return Outcome(measured, stages, runs=len(outcomes))


class HandTool(Tool):
    name = "hand"
    database = "bench_hand"

    def __init__(self) -> None:
        self.url = ""

    def reset(self, scenario: Scenario) -> None:
        self.url = fresh_database(scenario.admin_url, self.database)

    def run(self, scenario: Scenario, log_dir: Path, label: str) -> Outcome:
        command = [
            sys.executable, "-m", "benchmarks.hand_loader", "--base-url", scenario.server.base_url,
            "--database-url", self.url, "--properties", scenario.properties,
            "--entities", scenario.entities, "--limit", str(scenario.page_limit),
        ]  # fmt: skip
        env = {**_clean_environ(), "PYTHONPATH": str(ROOT)}
        return Outcome(measure(command, env, log_dir, label), None)

    def rows(self, scenario: Scenario) -> dict[str, int | None]:
        return {c: count_rows(self.url, HAND_TABLES[c]) for c in scenario.collections}


class DltTool(Tool):
    def __init__(self, file_format: str) -> None:
        self.file_format = file_format
        self.name = f"dlt-{file_format}"
        self.database = f"bench_dlt_{file_format}"
        self.url = ""
        self.pipelines = Path()

    def reset(self, scenario: Scenario) -> None:
        self.url = fresh_database(scenario.admin_url, self.database)
        self.pipelines = scenario.work / self.name / "pipelines"
        shutil.rmtree(self.pipelines, ignore_errors=True)
        self.pipelines.mkdir(parents=True)

    def run(self, scenario: Scenario, log_dir: Path, label: str) -> Outcome:
        command = [
            str(DLT_VENV / "bin" / "python"), str(ROOT / "benchmarks" / "dlt_loader.py"),
            "--base-url", scenario.server.base_url, "--database-url", host_in_netloc(self.url),
            "--pipelines-dir", str(self.pipelines), "--format", self.file_format,
            "--properties", scenario.properties, "--entities", scenario.entities,
            "--limit", str(scenario.page_limit),
        ]  # fmt: skip
        return Outcome(measure(command, _clean_environ(), log_dir, label), None)

    def rows(self, scenario: Scenario) -> dict[str, int | None]:
        return {c: count_rows(self.url, f"dlt_hostpms.{c}") for c in scenario.collections}


def ensure_dlt_venv() -> None:
    python = DLT_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", "import dlt"]).returncode == 0:
        return
    print(f"creating {DLT_VENV.relative_to(ROOT)} (dlt, once)...", flush=True)
    subprocess.run(["python3", "-m", "venv", str(DLT_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *DLT_REQUIREMENTS], check=True)


def build_tools(names: list[str], dlt_formats: list[str]) -> list[Tool]:
    tools: list[Tool] = []
    for name in names:
        if name == "project":
            tools.append(ProjectTool())
        elif name == "dagster":
            tools.append(DagsterTool())
        elif name == "hand":
            tools.append(HandTool())
        elif name == "dlt":
            ensure_dlt_venv()
            tools.extend(DltTool(file_format) for file_format in dlt_formats)
        else:
            raise SystemExit(f"unknown tool {name!r} (project, dagster, hand, dlt)")
    return tools


# --- the runs --------------------------------------------------------------------------


@dataclass
class Sample:
    run: int
    phase: str
    tool: str
    outcome: Outcome
    check: str
    server_cpu: float  # seconds the bulk server spent answering this tool


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)

    def of(self, phase: str, tool: str) -> list[Sample]:
        return [s for s in self.samples if s.phase == phase and s.tool == tool]


def expected_rows(rows: int, scenario: Scenario) -> dict[str, int]:
    shares = ALL_ENTITIES_SHARE if scenario.entities == "all" else {"reservations": 1.0}
    return {c: int(rows * shares[c]) for c in scenario.collections}


def run_benchmark(
    args: argparse.Namespace, tools: list[Tool], admin_url: str, work: Path
) -> Results:
    results = Results()
    logs = work / "logs"
    with bulk_server(args.rows, args.entities, args.properties, logs) as server:
        scenario = Scenario(admin_url, server, work, args.properties, args.entities)
        expected = expected_rows(args.rows, scenario)
        for run in range(1, args.runs + 1):
            server.control("reset")
            for phase in PHASES:
                if phase == "10% changed":
                    changed = server.control("change", fraction=0.1, span=3600)["changed"]
                    print(f"run {run}: {changed:,} records changed", flush=True)
                for tool in tools:
                    if phase == "first load":
                        tool.reset(scenario)
                    label = f"run{run}-{phase.replace(' ', '_').replace('%', 'pct')}-{tool.name}"
                    cpu_before = server.stats()["cpu_seconds"]
                    outcome = tool.run(scenario, logs, label)
                    server_cpu = server.stats()["cpu_seconds"] - cpu_before
                    check = _check(tool, scenario, expected, outcome)
                    results.samples.append(
                        Sample(run, phase, tool.name, outcome, check, server_cpu)
                    )
                    m = outcome.measured
                    print(
                        f"run {run} {phase:<15} {tool.name:<17} {m.wall:7.2f} s"
                        f" {m.peak_rss / 2**20:7.0f} MB  user {m.user:6.1f} s sys {m.sys:5.1f} s"
                        f"  server {server_cpu:5.1f} s"
                        f"  load {os.getloadavg()[0]:.1f}  {check}",
                        flush=True,
                    )
    return results


def _check(tool: Tool, scenario: Scenario, expected: dict[str, int], outcome: Outcome) -> str:
    if outcome.measured.returncode != 0:
        tail = (outcome.measured.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"EXIT {outcome.measured.returncode}: {tail[:120]}"
    found = tool.rows(scenario)
    wrong = [f"{c} {found[c]}≠{n}" for c, n in expected.items() if found[c] != n]
    return "rows ok" if not wrong else "ROWS " + ", ".join(wrong)


# --- the report ------------------------------------------------------------------------


def _span(values: list[float], unit: str = "s", digits: int = 2) -> str:
    if not values:
        return "n/a"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f} {unit}"
    return f"{median:.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def print_report(results: Results, tools: list[Tool], args: argparse.Namespace) -> None:
    names = [tool.name for tool in tools]
    print(f"\n## Whole sync, {args.rows:,} reservations ({args.entities}), {args.runs} run(s)\n")
    print(
        "| phase | tool | wall: median (range) | peak RSS | CPU user | CPU sys | server CPU"
        " | runs | check |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for phase in PHASES:
        for name in names:
            samples = results.of(phase, name)
            if not samples:
                continue
            m = [s.outcome.measured for s in samples]
            checks = sorted({s.check for s in samples})
            print(
                f"| {phase} | {name} | {_span([x.wall for x in m])} "
                f"| {_span([x.peak_rss / 2**20 for x in m], 'MB', 0)} "
                f"| {_span([x.user for x in m], 's', 1)} | {_span([x.sys for x in m], 's', 1)} "
                f"| {_span([s.server_cpu for s in samples], 's', 1)} "
                f"| {max(s.outcome.runs for s in samples)} | {'; '.join(checks)} |"
            )
    _print_ratios(results, names)
    _print_stages(results, names)


def _print_ratios(results: Results, names: list[str]) -> None:
    dlt_names = [name for name in names if name.startswith("dlt-")]
    pairs = [(a, "hand") for a in ("project", "dagster") if a in names and "hand" in names]
    pairs += [(a, "dlt (best)") for a in ("project", "dagster") if a in names and dlt_names]
    print(
        "\nRatios in the same run (median over runs, range; < 1: faster than the other)."
        " CPU: user + sys of the tool's processes (PostgreSQL's own CPU not included).\n"
    )
    print("| phase | ratio | wall | CPU |")
    print("|---|---|---|---|")
    for phase in PHASES:
        walls: dict[str, dict[int, float]] = {}
        cpus: dict[str, dict[int, float]] = {}
        for sample in results.samples:
            m = sample.outcome.measured
            if sample.phase == phase and m.returncode == 0:
                walls.setdefault(sample.tool, {})[sample.run] = m.wall
                cpus.setdefault(sample.tool, {})[sample.run] = m.user + m.sys
        for measure_of in (walls, cpus):  # dlt's best format in each run
            best: dict[int, float] = {}
            for name in dlt_names:
                for run, value in measure_of.get(name, {}).items():
                    best[run] = min(value, best.get(run, value))
            measure_of["dlt (best)"] = best
        for a, b in pairs:
            wall = [walls[a][r] / walls[b][r] for r in walls.get(a, {}) if r in walls.get(b, {})]
            cpu = [cpus[a][r] / cpus[b][r] for r in cpus.get(a, {}) if r in cpus.get(b, {})]
            if wall:
                print(f"| {phase} | {a}/{b} | {_span(wall, 'x')} | {_span(cpu, 'x')} |")


def _print_stages(results: Results, names: list[str]) -> None:
    print("\nPer-stage split (median seconds; from `hostpms sync --timings`)\n")
    shown = False
    for phase in PHASES:
        for name in ("project", "dagster"):
            samples = results.of(phase, name)
            if not samples:
                continue
            stage_sets = [s.outcome.stages for s in samples]
            borrowed = False
            if name == "dagster" and all(stages is None for stages in stage_sets):
                # Dagster's command prints no timings: its stages are taken as the project's
                # in the same run, so the rest of its wall time is Dagster's start/run overhead.
                project = {s.run: s.outcome.stages for s in results.of(phase, "project")}
                stage_sets = [project.get(s.run) for s in samples]
                borrowed = True
            if all(stages is None for stages in stage_sets):
                print(f"- {phase}, {name}: n/a (no `timings` line)")
                continue
            shown = True
            stages = sorted({stage for st in stage_sets if st for stage in st})
            parts = []
            for stage in stages:
                values = [st[stage] for st in stage_sets if st and stage in st]
                parts.append(f"{stage} {statistics.median(values):.2f}")
            # Stages overlap (pages arrive while chunks load); "total" is the command's own
            # clock from process start, so the rest is what follows it (exit, teardown).
            rest = [
                s.outcome.measured.wall - st.get("total", sum(st.values()))
                for s, st in zip(samples, stage_sets, strict=True)
                if st
            ]
            label = "Dagster start/run overhead" if name == "dagster" else "outside stages"
            source = " (stages: the project's, same run)" if borrowed else ""
            print(
                f"- {phase}, {name}{source}: {', '.join(parts)}; {label} {statistics.median(rest):.2f}"
            )
    if not shown:
        print("(the sync printed no `timings {json}` line: per-stage split n/a)")


# --- rate-limited scenario -------------------------------------------------------------

RATE_LIMITED_ROWS = 10_000
RATE_LIMITED_PAGE = 100
RATE_LIMIT = 100  # requests per minute, per client and endpoint (the contract's)


def run_rate_limited(admin_url: str, work: Path) -> None:
    pages = RATE_LIMITED_ROWS // RATE_LIMITED_PAGE
    bound = pages / RATE_LIMIT * 60
    logs = work / "logs"
    with bulk_server(RATE_LIMITED_ROWS, "reservations", "PT-LIS-001", logs, RATE_LIMIT) as server:
        scenario = Scenario(
            admin_url, server, work, "PT-LIS-001", "reservations",
            page_limit=RATE_LIMITED_PAGE, rate_limit_per_minute=RATE_LIMIT,
        )  # fmt: skip
        tool = ProjectTool()
        tool.reset(scenario)
        outcome = tool.run(scenario, logs, "rate-limited-project")
        stats = server.stats()
        check = _check(tool, scenario, {"reservations": RATE_LIMITED_ROWS}, outcome)
    wall = outcome.measured.wall
    print(
        f"\n## Rate limit on ({RATE_LIMIT}/min), {RATE_LIMITED_ROWS:,} reservations at limit={RATE_LIMITED_PAGE}\n"
    )
    paging = (stats["last_request_at"] or 0.0) - (stats["first_request_at"] or 0.0)
    print(
        "| tool | wall | first to last request | bound (pages / limit) | wall over the bound"
        " | 429s | pages served | check |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| project | {wall:.1f} s | {paging:.1f} s | {bound:.0f} s ({pages} pages) "
        f"| {100 * (wall / bound - 1):+.1f} % | {stats['rate_limited']} | {stats['pages']} "
        f"| {check} |"
    )


# --- main ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=100_000, help="reservations")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--entities", choices=("reservations", "all"), default="reservations")
    parser.add_argument("--tools", default="project,dagster,hand,dlt")
    parser.add_argument(
        "--dlt-formats",
        default="insert_values,csv",
        help="loader file formats to try (parquet: dlt falls back for merge into PostgreSQL)",
    )
    parser.add_argument("--properties", default="PT-LIS-001")
    parser.add_argument("--rate-limited", action="store_true", help="only the rate-limit scenario")
    parser.add_argument("--database-url", help="an existing PostgreSQL (default: a private one)")
    parser.add_argument("--keep", type=Path, help="work folder to keep (logs, homes)")
    args = parser.parse_args()

    with _work_dir(args.keep) as work, postgres_url(args.database_url) as admin_url:
        print(f"PostgreSQL: {durability(admin_url)}; work folder {work}", flush=True)
        if args.rate_limited:
            run_rate_limited(admin_url, work)
            return
        tools = build_tools(args.tools.split(","), args.dlt_formats.split(","))
        results = run_benchmark(args, tools, admin_url, work)
        print_report(results, tools, args)


@contextmanager
def _work_dir(keep: Path | None) -> Iterator[Path]:
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep.absolute()
        return
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as folder:
        yield Path(folder)


if __name__ == "__main__":
    main()

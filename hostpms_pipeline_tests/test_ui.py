"""The Dagster UI, used as a person uses it: `hostpms ui` (`dg dev`: webserver and daemon)
driven by headless Chromium.

The browser is Debian's ``chromium`` package, driven by Playwright's Python package through
``executable_path`` (no browser download). Without it the browser tests are skipped and
say so. Screenshots are kept under ``test-artifacts/ui/`` with the UI's own log.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from playwright.sync_api import expect, sync_playwright
from psycopg import sql

from hostpms_pipeline.cli.commands import PROJECT_ROOT
from hostpms_pipeline.defs import build_definitions
from hostpms_pipeline.defs.partitions import (
    MONTH_DIMENSION,
    PROPERTY_DIMENSION,
    live_partition_key,
)
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET, Settings
from hostpms_pipeline.simulator import HostPMSSimulator, SimulatorConfig, run_in_background
from hostpms_pipeline.warehouse import database
from hostpms_pipeline_tests.fixtures.cli import hostpms_command

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "ui"
CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser") if (path := shutil.which(name))), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium on PATH: the UI test drives Debian's chromium package "
    "(apt-get install chromium; .ci/run installs it)",
)
UI_TIMEOUT_MS = 60_000  # a cold page on a busy 2-core CI machine
RUN_TIMEOUT_MS = 240_000  # the whole graph, one partition, launched by the daemon
CONNECTED_PROPERTY = "PT-LIS-001"  # HOSTPMS_PROPERTY_IDS of this UI's code location

pytestmark = pytest.mark.slow


@dataclass
class DagsterUI:
    url: str
    log: Path
    settings: Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ui_environment(pg_server_url: str, tmp_path_factory) -> Iterator[dict[str, str]]:
    """A simulator, a fresh schema and a home of their own; DAGSTER_HOME left for `hostpms ui`
    to choose, as it does for a user."""
    schema = f"test_ui_{uuid.uuid4().hex[:10]}"
    database.migrate(pg_server_url, schema)
    config = SimulatorConfig(
        property_ids=(CONNECTED_PROPERTY, "PT-POR-002"),
        reservations_per_property=60,
        rate_limit=1000,
    )
    home = tmp_path_factory.mktemp("ui") / "home"
    with run_in_background(HostPMSSimulator(config)) as simulator:
        environment = {
            key: value
            for key, value in os.environ.items()
            if key != "DAGSTER_HOME" and not key.startswith("HOSTPMS_")
        }
        yield {
            **environment,
            "HOSTPMS_API_BASE_URL": simulator.base_url,
            "HOSTPMS_CLIENT_ID": SIMULATOR_CLIENT_ID,
            "HOSTPMS_CLIENT_SECRET": SIMULATOR_CLIENT_SECRET,
            "HOSTPMS_DATABASE_URL": pg_server_url,
            "HOSTPMS_DB_SCHEMA": schema,
            "HOSTPMS_HOME": str(home),
            "HOSTPMS_PROPERTY_IDS": CONNECTED_PROPERTY,
            "HOSTPMS_GDPR_KEY": os.environ["HOSTPMS_GDPR_KEY"],
        }
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="module")
def dagster_ui(ui_environment: dict[str, str]) -> Iterator[DagsterUI]:
    """`hostpms ui` on a free port, until its code location has loaded."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    log = ARTIFACTS / "hostpms-ui.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            hostpms_command("ui", "--port", str(port)),
            env=ui_environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: webserver, daemon, code servers
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_code_location(url, process, log)
        with pytest.MonkeyPatch.context() as environment:
            for key, value in ui_environment.items():
                environment.setenv(key, value)
            settings = Settings()
        yield DagsterUI(url, log, settings)
    finally:
        _stop(process)


def _wait_for_code_location(url: str, process: subprocess.Popen, log: Path) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"`hostpms ui` exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            answer = httpx.post(f"{url}/graphql", json={"query": query}, timeout=5).json()
            entries = answer["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except (httpx.HTTPError, KeyError, TypeError, ValueError):
            pass
        time.sleep(1)
    pytest.fail(f"the UI did not load the code location in 180 s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the process group we started: politely, then for good."""
    for stop_signal, grace in ((signal.SIGINT, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, stop_signal)
        except ProcessLookupError:
            return
        try:
            process.wait(grace)
            time.sleep(1)  # let the children it asked to stop finish
        except subprocess.TimeoutExpired:
            continue
        try:
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of the group, if any
        except ProcessLookupError:
            pass
        return


@pytest.fixture(scope="module")
def browser(dagster_ui):
    expect.set_options(timeout=UI_TIMEOUT_MS)  # assertions wait as long as actions do
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, dagster_ui):
    context = browser.new_context(viewport={"width": 1600, "height": 1100}, base_url=dagster_ui.url)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _checks_by_asset(settings: Settings) -> dict[str, set[str]]:
    """The check names of each asset (``hostpms/bookings`` → ...), from the definitions."""
    checks = defaultdict(set)
    for key in build_definitions(settings).resolve_asset_graph().asset_check_keys:
        checks["/".join(key.asset_key.path)].add(key.name)
    return checks


def _assets_by_group(settings: Settings) -> dict[str, list[str]]:
    graph = build_definitions(settings).resolve_asset_graph()
    groups = defaultdict(list)
    for key in graph.get_all_asset_keys():
        groups[graph.get(key).group_name].append(key.path[-1])
    return groups


def test_hostpms_ui_starts_dg_dev_without_misleading_warnings(dagster_ui):
    log = dagster_ui.log.read_text()
    assert "Launching Dagster services" in log
    for misleading in (
        "superseded",  # `dagster dev` is; `dg dev` is what runs
        "will not be used",  # the project's instance settings are in DAGSTER_HOME
        "does not match the virtual environment",
        "PreviewWarning",
    ):
        assert misleading not in log, f"{misleading!r} in the UI's log:\n{log[-3000:]}"


@needs_chromium
def test_the_asset_graph_shows_every_asset_of_every_entity(page, dagster_ui):
    groups = _assets_by_group(dagster_ui.settings)
    assert len(groups) >= 4
    for group, assets in sorted(groups.items()):
        page.goto(f'/asset-groups~group:"{group}"')
        for asset in assets:
            expect(page.get_by_text(asset, exact=True).first).to_be_visible()
        _shot(page, f"graph-{group}")


@needs_chromium
def test_one_partition_of_a_connected_property_materializes_from_the_ui_and_every_check_passes(
    page, dagster_ui
):
    settings = dagster_ui.settings
    property_id = settings.property_ids[0]
    partition = live_partition_key(property_id).keys_by_dimension
    page.goto("/asset-groups")
    page.get_by_role("button", name="Materialize all…").click()
    month = page.get_by_placeholder(re.compile("^ex: "))
    month.fill(partition[MONTH_DIMENSION])
    month.press("Enter")
    page.get_by_text("Select a partition or create one").click()
    page.get_by_role("menuitem", name=partition[PROPERTY_DIMENSION]).click()
    page.keyboard.press("Escape")
    _shot(page, "materialize-dialog")
    page.get_by_role("button", name="Launch 1 run").click()
    # The dialog closes once the run is queued (tens of seconds on a busy machine), then a
    # notice links to the run; leaving the page earlier would abandon the launch.
    expect(page.get_by_text("Launch runs to materialize")).to_be_hidden(timeout=RUN_TIMEOUT_MS)
    page.locator("a[href^='/runs/']").first.click()
    expect(page.get_by_text(f"{partition[MONTH_DIMENSION]}|{property_id}").first).to_be_visible()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    _shot(page, "run")

    # Every asset's checks, each listed by name, each evaluated by this run and passed.
    for asset, checks in sorted(_checks_by_asset(settings).items()):
        page.goto(f"/assets/{asset}?view=checks")
        expect(page.get_by_text(f"Checks ({len(checks)})", exact=True)).to_be_visible()
        for check in checks:
            expect(page.get_by_text(check, exact=True).first).to_be_attached()
        expect(page.get_by_text("Succeeded", exact=True)).to_have_count(len(checks))
        _shot(page, f"checks-{asset.replace('/', '-')}")


@needs_chromium
def test_the_schedule_and_the_sensors_are_listed_and_can_be_switched_on(page, dagster_ui):
    defs = build_definitions(dagster_ui.settings)
    names = [s.name for s in defs.schedules] + [s.name for s in defs.sensors]
    page.goto("/automation")
    for name in names:
        expect(page.get_by_text(name, exact=True).first).to_be_visible()
    for name in ("hostpms_sync_failure_alert", "hostpms_sync_lag_alarm"):  # alarms start on
        expect(_switch(page, name)).to_be_checked()
    for name in ("hostpms_hourly_poll", "hostpms_webhook_drops"):
        switch = _switch(page, name)
        expect(switch).not_to_be_checked()
        switch.locator("xpath=..").click()
        expect(switch).to_be_checked()
    _shot(page, "automation")
    page.reload()
    for name in ("hostpms_hourly_poll", "hostpms_webhook_drops"):
        expect(_switch(page, name)).to_be_checked()  # kept by the instance, not the page


def _switch(page, name: str):
    """The on/off switch in the automation list's row of ``name``."""
    row = page.locator("[data-index]").filter(has=page.get_by_text(name, exact=True))
    return row.get_by_role("checkbox").last

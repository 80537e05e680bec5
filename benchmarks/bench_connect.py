"""Seconds from ``hostpms connect`` to the property's first booking in PostgreSQL, against the
simulator (200 reservations per property, the settings' default); then ``hostpms status``.

Run: ``.venv/bin/python -m benchmarks.bench_connect``
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from pydantic import SecretStr

from hostpms_pipeline.cli.commands import PROJECT_ROOT
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET, Settings
from hostpms_pipeline.simulator import HostPMSSimulator, SimulatorConfig, run_in_background
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.warehouse import database
from hostpms_pipeline.webhooks.server import build_app

CONFIGURED, CONNECTED = "PT-LIS-001", "PT-POR-002"
COUNT = f"SELECT count(*) FROM bookings WHERE hotel_id = '{CONNECTED}'"


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-connect-"))
    url = database.embedded_server(tmp / "pg").get_uri()
    database.migrate(url, "public")
    config = SimulatorConfig(property_ids=(CONFIGURED, CONNECTED), anomaly_rate=0.03)
    try:
        with run_in_background(HostPMSSimulator(config)) as sim:
            dagster_home = tmp / "dagster"
            dagster_home.mkdir()
            shutil.copy(PROJECT_ROOT / "instance" / "dagster.yaml", dagster_home / "dagster.yaml")
            env = {
                **os.environ,
                "HOSTPMS_API_BASE_URL": sim.base_url,
                "HOSTPMS_CLIENT_ID": SIMULATOR_CLIENT_ID,
                "HOSTPMS_CLIENT_SECRET": SIMULATOR_CLIENT_SECRET,
                "HOSTPMS_DATABASE_URL": url,
                "HOSTPMS_HOME": str(tmp / "home"),
                "DAGSTER_HOME": str(dagster_home),
                "HOSTPMS_PROPERTY_IDS": CONFIGURED,
            }
            settings = Settings(
                home=tmp / "home",
                api_base_url=sim.base_url,
                database_url=SecretStr(url),
                property_ids=(CONFIGURED,),
            )
            cli = [sys.executable, "-m", "hostpms_pipeline.cli"]
            with serve_app_in_background(build_app(settings)) as port:
                subprocess.run([*cli, "sync"], env=env, capture_output=True, check=True)
                started = time.monotonic()
                connect = [
                    *cli, "connect", "--property-id", CONNECTED,
                    "--client-id", SIMULATOR_CLIENT_ID, "--client-secret", SIMULATOR_CLIENT_SECRET,
                    "--webhook-url", f"http://127.0.0.1:{port}/webhooks/hostpms",
                ]  # fmt: skip
                process = subprocess.Popen(connect, env=env)
                first = None
                with psycopg.connect(url, autocommit=True) as conn:
                    while first is None and process.poll() is None:
                        if conn.execute(COUNT).fetchone()[0]:
                            first = time.monotonic() - started
                        time.sleep(0.1)
                process.wait()
                total = time.monotonic() - started
                shown = f"{first:.1f} s" if first is not None else "never"
                print(f"\nconnect -> first booking in PostgreSQL: {shown}; exited "
                      f"{process.returncode} after {total:.1f} s", flush=True)  # fmt: skip
                sim.simulator.emit_event(CONNECTED, "reservation.updated")
                time.sleep(4)  # delivered, and the receiver's outcome counts written
                subprocess.run([*cli, "status"], env=env, check=True)
    finally:
        database.stop_embedded_server(tmp / "pg")
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

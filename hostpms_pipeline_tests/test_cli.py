"""The ``hostpms`` command, run as a user runs it: a subprocess with environment variables."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET


@pytest.fixture
def environment(running_simulator, pg_url, pg_schema, tmp_path):
    return {
        **os.environ,
        "HOSTPMS_API_BASE_URL": running_simulator.base_url,
        "HOSTPMS_CLIENT_ID": SIMULATOR_CLIENT_ID,
        "HOSTPMS_CLIENT_SECRET": SIMULATOR_CLIENT_SECRET,
        "HOSTPMS_DATABASE_URL": pg_url,
        "HOSTPMS_DB_SCHEMA": pg_schema,
        "HOSTPMS_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(_dagster_home(tmp_path)),
    }


def _dagster_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster"
    home.mkdir()
    return home


def hostpms(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hostpms_pipeline.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def count_bookings(pg_url: str, schema: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        query = sql.SQL("SELECT hotel_id, count(*) FROM {}.bookings GROUP BY hotel_id").format(
            sql.Identifier(schema)
        )
        return dict(conn.execute(query).fetchall())


def test_sync_polls_every_property_and_loads_postgres(environment, pg_url, pg_schema):
    done = hostpms("sync", env={**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001,ES-MAD-001"})
    assert done.returncode == 0, done.stderr
    assert "PT-LIS-001:" in done.stdout and "ES-MAD-001:" in done.stdout
    counts = count_bookings(pg_url, pg_schema)
    assert set(counts) == {"PT-LIS-001", "ES-MAD-001"} and all(counts.values())


def test_sync_exits_non_zero_when_a_property_fails_and_still_syncs_the_others(environment, pg_url, pg_schema):
    env = {**environment, "HOSTPMS_PROPERTY_IDS": "PT-XXX-404,PT-POR-002"}  # HostPMS knows no PT-XXX-404
    done = hostpms("sync", env=env)
    assert done.returncode == 1
    assert "PT-XXX-404" in done.stderr
    assert count_bookings(pg_url, pg_schema).get("PT-POR-002", 0) > 0
    assert SIMULATOR_CLIENT_SECRET not in done.stdout + done.stderr

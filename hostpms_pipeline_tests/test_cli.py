"""The ``hostpms`` command, run as a user runs it: a subprocess with environment variables."""

import socket
import subprocess
import sys
import time

import httpx
import psycopg
import pytest
from psycopg import sql

from hostpms_pipeline.settings import SIMULATOR_CLIENT_SECRET
from hostpms_pipeline_tests.fixtures.cli import hostpms_command


@pytest.fixture
def environment(cli_env):
    return cli_env


def hostpms(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        hostpms_command(*args), env=env, capture_output=True, text=True, timeout=300
    )


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


def test_sync_exits_non_zero_when_a_property_fails_and_still_syncs_the_others(
    environment, pg_url, pg_schema
):
    env = {
        **environment,
        "HOSTPMS_PROPERTY_IDS": "PT-XXX-404,PT-POR-002",
    }  # HostPMS knows no PT-XXX-404
    done = hostpms("sync", env=env)
    assert done.returncode == 1
    assert "PT-XXX-404" in done.stderr
    assert count_bookings(pg_url, pg_schema).get("PT-POR-002", 0) > 0
    assert SIMULATOR_CLIENT_SECRET not in done.stdout + done.stderr


def test_serve_webhooks_answers_health_checks(environment):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hostpms_pipeline.cli", "serve-webhooks", "--port", str(port)],
        env={**environment, "HOSTPMS_WEBHOOK_SECRET": "whsec_test"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        response = _get_when_up(f"http://127.0.0.1:{port}/health")
        assert response.status_code == 200
        unsigned = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/hostpms/PT-LIS-001/reservation.updated",
            content=b"{}",
        )
        assert unsigned.status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_webhooks_with_two_workers_writes_the_access_line_of_each_delivery(environment):
    # Worker processes are spawned: logging set up only in the parent would never reach them.
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hostpms_pipeline.cli",
            "serve-webhooks",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env={**environment, "HOSTPMS_WEBHOOK_SECRET": "whsec_test"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _get_when_up(f"http://127.0.0.1:{port}/health")
        url = f"http://127.0.0.1:{port}/webhooks/hostpms/PT-LIS-001/reservation.updated"
        assert httpx.post(url, content=b"{}").status_code == 401
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=20)

    access_lines = [
        line for line in stderr.splitlines() if line.startswith('{"message":"webhook delivery"')
    ]
    assert len(access_lines) == 1
    assert '"outcome":"missing_signature"' in access_lines[0] and '"status":401' in access_lines[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get_when_up(url: str, attempts: int = 150) -> httpx.Response:
    for _ in range(attempts):
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_resync_rereads_the_whole_history_and_changes_nothing(environment, pg_url, pg_schema):
    env = {**environment, "HOSTPMS_PROPERTY_IDS": "ES-MAD-001"}
    assert hostpms("sync", env=env).returncode == 0
    before = count_bookings(pg_url, pg_schema)
    incremental = hostpms("sync", env=env)
    resync = hostpms("resync", "ES-MAD-001", env=env)
    assert resync.returncode == 0, resync.stderr
    assert _polled(resync) == before["ES-MAD-001"] > _polled(incremental)
    assert count_bookings(pg_url, pg_schema) == before


def _polled(done) -> int:
    """Reservations polled, from the property's summary line (after the progress lines)."""
    [summary] = [line for line in done.stdout.splitlines() if " polled" in line]
    return int(summary.split("reservations: ")[1].split(" polled")[0])

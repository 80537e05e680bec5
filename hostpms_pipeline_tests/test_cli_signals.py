"""SIGTERM and SIGINT stop ``hostpms sync`` (and the receiver) within seconds, exit 128 + N,
move no checkpoint past what landed, and leave no run STARTED (subprocesses throughout)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from hostpms_pipeline_tests.fixtures.cli import hostpms_command, run_hostpms
from hostpms_pipeline_tests.test_cli import _free_port, _get_when_up, count_bookings
from hostpms_pipeline_tests.test_pipeline import visible_reservations

STOP_WITHIN_SECONDS = 10  # the "within a few seconds", with room for a loaded CI


def start(env: dict, log: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        hostpms_command(*args), env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def wait_for_line(log: Path, text: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def stop(process: subprocess.Popen, signo: int) -> tuple[int, float]:
    sent = time.monotonic()
    process.send_signal(signo)
    try:
        code = process.wait(timeout=60)
    finally:
        process.kill()
    return code, time.monotonic() - sent


@pytest.fixture
def broken_raw_store(tmp_path: Path) -> Path:
    raw = tmp_path / "broken-raw"
    raw.mkdir()
    (raw / "hostpms").write_text("a file where the store needs a folder")  # every write fails
    return raw


@pytest.mark.parametrize(("signo", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_a_retry_wait_stops_the_sync_at_once(
    signo, code, cli_env, broken_raw_store, tmp_path
):
    env = {
        **cli_env,
        "HOSTPMS_RAW_URL": str(broken_raw_store),
        "HOSTPMS_PROPERTY_IDS": "PT-LIS-001,ES-MAD-001",
    }
    log = tmp_path / "sync.log"
    process = start(env, log, "sync")
    wait_for_line(log, "retry 1 of 3", process)  # asleep in the 60 s retry wait
    exit_code, took = stop(process, signo)
    output = log.read_text()
    assert exit_code == code, output
    assert took < STOP_WITHIN_SECONDS, output
    assert f"interrupted by {signal.Signals(signo).name}" in output
    assert "ES-MAD-001: syncing" not in output  # the next property is not started
    assert "Traceback" not in output


def test_sigterm_mid_polling_stops_at_once_and_the_next_sync_loses_nothing(
    cli_env, tmp_path, pg_url, pg_schema, running_simulator
):
    slow = {
        **cli_env,
        "HOSTPMS_PROPERTY_IDS": "PT-LIS-001,ES-MAD-001",
        "HOSTPMS_PAGE_LIMIT": "10",
        "HOSTPMS_RATE_LIMIT_PER_MINUTE": "60",  # a page a second: a sync of minutes
    }
    log = tmp_path / "sync.log"
    process = start(slow, log, "sync")
    wait_for_line(log, "records landed", process)  # its progress: it is polling
    exit_code, took = stop(process, signal.SIGTERM)
    output = log.read_text()
    assert (exit_code, took < STOP_WITHIN_SECONDS) == (143, True), output
    assert "ES-MAD-001: syncing" not in output

    done, _ = run_hostpms("sync", env={**cli_env, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert count_bookings(pg_url, pg_schema) == {
        "PT-LIS-001": len(visible_reservations(running_simulator, "PT-LIS-001"))
    }


@pytest.mark.parametrize(("signo", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_receiver_stops_within_seconds_on_a_signal(signo, code, cli_env, tmp_path):
    port = _free_port()
    log = tmp_path / "receiver.log"
    process = start(
        {**cli_env, "HOSTPMS_WEBHOOK_SECRET": "whsec_test"},
        log,
        "serve-webhooks",
        "--port",
        str(port),
    )
    _get_when_up(f"http://127.0.0.1:{port}/health")
    exit_code, took = stop(process, signo)
    assert exit_code == code, log.read_text()
    assert took < STOP_WITHIN_SECONDS

"""One sync per property at a time: the CLI skips a busy property, a UI run waits then fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import materialize

from hostpms_pipeline.defs.partitions import live_partition_key
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import database, property_lock
from hostpms_pipeline_tests.fixtures.cli import run_hostpms
from hostpms_pipeline_tests.fixtures.definitions import connector_graph, instance_with_properties
from hostpms_pipeline_tests.test_cli import count_bookings
from hostpms_pipeline_tests.test_cli_signals import start, stop, wait_for_line
from hostpms_pipeline_tests.test_pipeline import resources  # noqa: F401 - fixture

PROPERTY = "PT-LIS-001"


@contextmanager
def held_by_another_process(
    pg_url: str, schema: str, property_id: str = PROPERTY
) -> Iterator[None]:
    """The lock as another process holds it: a session of its own, outside this process's books."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        key = database.advisory_key("sync", f"{schema}:{property_id}")
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield


def test_hold_refuses_a_lock_another_session_holds_and_waits_for_it(pg_url, pg_schema):
    def connect():
        return database.connect(pg_url, pg_schema)

    with held_by_another_process(pg_url, pg_schema):
        with property_lock.hold(connect, PROPERTY) as held:
            assert held is False
        with property_lock.hold(connect, "ES-MAD-001") as other:
            assert other is True  # per property
    release = threading.Event()

    def hold_then_release() -> None:
        with held_by_another_process(pg_url, pg_schema):
            release.wait(10)

    holder = threading.Thread(target=hold_then_release)
    holder.start()
    time.sleep(0.5)
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    with property_lock.hold(connect, PROPERTY, wait_seconds=10) as held:
        assert held is True
        with property_lock.hold(connect, PROPERTY) as again:
            assert again is True  # re-entrant within a process (the CLI, then its run)
    assert 0.5 < time.monotonic() - started < 5
    holder.join()


def test_a_second_hostpms_sync_skips_the_property_the_first_is_polling(
    cli_env, tmp_path, pg_url, pg_schema
):
    slow = {
        **cli_env,
        "HOSTPMS_PROPERTY_IDS": PROPERTY,
        "HOSTPMS_PAGE_LIMIT": "10",
        "HOSTPMS_RATE_LIMIT_PER_MINUTE": "60",
    }
    log = tmp_path / "first.log"
    first = start(slow, log, "sync")
    try:
        wait_for_line(log, "records landed", first)  # its progress: it is polling
        second, took = run_hostpms("sync", env={**cli_env, "HOSTPMS_PROPERTY_IDS": PROPERTY})
    finally:
        stop(first, 15)  # SIGTERM
    assert second.returncode == 0, second.stdout + second.stderr + log.read_text()
    assert f"{PROPERTY}: SKIPPED: another sync of {PROPERTY} is polling HostPMS" in second.stdout, (
        second.stdout + log.read_text()
    )
    assert "records landed" not in second.stdout + second.stderr
    assert took < 30


def test_a_ui_materialization_waits_for_the_lock_then_fails_in_one_line(
    resources,  # noqa: F811
    pg_url,
    pg_schema,
    monkeypatch,
):
    monkeypatch.setenv("HOSTPMS_PROPERTY_LOCK_WAIT_SECONDS", "1")
    get_settings.cache_clear()
    try:
        with held_by_another_process(pg_url, pg_schema), instance_with_properties() as instance:
            started = time.monotonic()
            result = materialize(  # the implicit asset job, as the UI launches it: no hostpms tag
                connector_graph(),
                resources=resources,
                instance=instance,
                partition_key=str(live_partition_key(PROPERTY)),
                raise_on_error=False,
            )
            took = time.monotonic() - started
    finally:
        get_settings.cache_clear()
    assert not result.success
    failures = [event for event in result.all_events if event.is_step_failure]
    assert len(failures) == len(ENTITIES)  # each entity's polling step
    for failure in failures:
        assert failure.step_failure_data.user_failure_data.description == (
            f"another sync of {PROPERTY} is polling HostPMS right now "
            "(waited 1 s; HOSTPMS_PROPERTY_LOCK_WAIT_SECONDS)"
        )
    assert 1 <= took < 30 * len(ENTITIES)
    assert count_bookings(pg_url, pg_schema) == {}

"""``hostpms sync`` with more raw data than one chunk may hold in memory."""

import json
import time

import psycopg

from hostpms_pipeline_tests.test_cli import (  # noqa: F401 - fixture
    _polled,
    count_bookings,
    environment,
    hostpms,
)
from hostpms_pipeline_tests.test_pipeline import visible_reservations


def test_one_sync_loads_everything_a_chunk_at_a_time(
    environment,  # noqa: F811 - the imported fixture
    pg_url,
    pg_schema,
    running_simulator,
):
    # 50 records per chunk: every page of 100 is a chunk of its own.
    env = {**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001", "HOSTPMS_MAX_RECORDS_PER_RUN": "50"}
    done = hostpms("sync", env=env)
    assert done.returncode == 0, done.stderr
    assert count_bookings(pg_url, pg_schema) == {
        "PT-LIS-001": len(visible_reservations(running_simulator, "PT-LIS-001"))
    }
    with psycopg.connect(pg_url) as conn:
        conn.execute(f"SET search_path TO {pg_schema}")
        [(pending,)] = conn.execute("SELECT count(*) FROM raw_files WHERE processed_at IS NULL")
    assert pending == 0


def test_a_sync_that_finds_nothing_new_lands_no_file(
    environment,  # noqa: F811 - the imported fixture
    pg_url,
    pg_schema,
):
    """The overlap re-reads the newest records; pages of states already stored are not
    landed again, and a page holding a state newer than the stored one is. Such a sync
    stays light: it loads neither Arrow nor numpy nor phonenumbers."""
    env = {**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001"}

    def landed_files() -> int:
        with psycopg.connect(pg_url) as conn:
            conn.execute(f"SET search_path TO {pg_schema}")
            return conn.execute("SELECT count(*) FROM raw_files").fetchone()[0]

    first = hostpms("sync", env=env)
    assert first.returncode == 0, first.stderr
    landed = landed_files()
    idle = hostpms("sync", env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    assert idle.returncode == 0, idle.stderr
    assert _polled(idle) > 0  # the overlap's records came again
    assert landed_files() == landed
    assert "psycopg" in _imported(idle.stderr)  # the report is there to read
    assert not {"pyarrow", "numpy", "phonenumbers"} & _imported(idle.stderr)
    with psycopg.connect(pg_url) as conn:  # one of them stored older than HostPMS holds it
        conn.execute(
            f"UPDATE {pg_schema}.bookings SET source_updated_at = source_updated_at"
            f" - interval '1 day' WHERE id = (SELECT id FROM {pg_schema}.bookings"
            " ORDER BY source_updated_at DESC LIMIT 1)"
        )
    stale = hostpms("sync", env=env)
    assert stale.returncode == 0, stale.stderr
    assert landed_files() > landed


def test_timings_split_the_sync_within_its_own_duration(
    environment,  # noqa: F811 - the imported fixture
):
    """``--timings``: the start-up (interpreter and imports) and the whole are measured from
    the process's start, so neither exceeds the time the process took."""
    started = time.monotonic()
    done = hostpms("sync", "--timings", env={**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001"})
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("timings ")]
    timings = json.loads(line.removeprefix("timings "))
    assert timings["startup"] > 0
    assert timings["startup"] + timings["poll"] <= timings["total"] <= took


def test_the_ui_shows_what_a_cli_sync_loaded(
    environment,  # noqa: F811 - the imported fixture
    pg_url,
    pg_schema,
    monkeypatch,
    request,
):
    """No Dagster run, yet the daemon's sensor shows the table's row count and every month
    the first pass loaded; each sync is reported once."""
    from dagster import DagsterInstance, SkipReason, build_sensor_context

    from hostpms_pipeline import settings as settings_module
    from hostpms_pipeline.defs.cli_syncs import hostpms_cli_syncs
    from hostpms_pipeline.defs.keys import entity_keys
    from hostpms_pipeline.defs.partitions import live_partition_key
    from hostpms_pipeline.defs.resources import (
        NotifierResource,
        ObjectStoreResource,
        PostgresResource,
    )
    from hostpms_pipeline.entities import RESERVATIONS

    env = {**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001"}
    done = hostpms("sync", env=env)
    assert done.returncode == 0, done.stderr
    for name, value in env.items():
        if name.startswith("HOSTPMS_"):
            monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()  # the sensor reads these settings
    request.addfinalizer(settings_module.get_settings.cache_clear)
    settings = settings_module.get_settings()
    resources = {
        "postgres": PostgresResource(url=pg_url, db_schema=pg_schema),
        "processed_store": ObjectStoreResource(url=settings.resolved_processed_url),
        "notifier": NotifierResource(),
    }
    keys = entity_keys(RESERVATIONS)
    with DagsterInstance.ephemeral() as instance:
        result = hostpms_cli_syncs(build_sensor_context(instance=instance, resources=resources))
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
        again = hostpms_cli_syncs(
            build_sensor_context(instance=instance, resources=resources, cursor=result.cursor)
        )
        done_partitions = instance.get_materialized_partitions(keys.table)
        [latest] = instance.fetch_materializations(keys.table, limit=1).records
    assert isinstance(again, SkipReason)
    assert str(live_partition_key("PT-LIS-001")) in done_partitions
    assert any(key.endswith("|PT-LIS-001") and key < str(live_partition_key("PT-LIS-001"))
               for key in done_partitions)  # fmt: skip
    row_count = latest.asset_materialization.metadata["dagster/row_count"].value
    assert row_count == count_bookings(pg_url, pg_schema)["PT-LIS-001"]


def _imported(stderr: str) -> set[str]:
    """Top-level packages a process imported, from its ``PYTHONPROFILEIMPORTTIME`` report."""
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }

"""``hostpms sync`` with more raw data than one chunk may hold in memory."""

import psycopg

from hostpms_pipeline_tests.test_cli import count_bookings, environment, hostpms  # noqa: F401 - fixture
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


def test_the_ui_shows_what_a_cli_sync_loaded(
    environment,  # noqa: F811 - the imported fixture
    pg_url,
    pg_schema,
):
    """No Dagster run, yet the table's row count and every month the first pass loaded show."""
    from dagster import DagsterInstance

    from hostpms_pipeline.defs.keys import entity_keys
    from hostpms_pipeline.defs.partitions import live_partition_key
    from hostpms_pipeline.entities import RESERVATIONS

    env = {**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001"}
    done = hostpms("sync", env=env)
    assert done.returncode == 0, done.stderr
    keys = entity_keys(RESERVATIONS)
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        done_partitions = instance.get_materialized_partitions(keys.table)
        [latest] = instance.fetch_materializations(keys.table, limit=1).records
    assert str(live_partition_key("PT-LIS-001")) in done_partitions
    assert any(key.endswith("|PT-LIS-001") and key < str(live_partition_key("PT-LIS-001"))
               for key in done_partitions)  # fmt: skip
    row_count = latest.asset_materialization.metadata["dagster/row_count"].value
    assert row_count == count_bookings(pg_url, pg_schema)["PT-LIS-001"]


def test_a_sync_that_finds_nothing_new_lands_no_file(
    environment,  # noqa: F811 - the imported fixture
    pg_url,
    pg_schema,
):
    env = {**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001"}
    assert hostpms("sync", env=env).returncode == 0
    with psycopg.connect(pg_url) as conn:
        conn.execute(f"SET search_path TO {pg_schema}")
        [(landed,)] = conn.execute("SELECT count(*) FROM raw_files")
        again = hostpms("sync", env=env)  # re-reads the 5-minute overlap: all already stored
        assert again.returncode == 0, again.stderr
        [(after,)] = conn.execute("SELECT count(*) FROM raw_files")
    assert landed > 0 and after == landed

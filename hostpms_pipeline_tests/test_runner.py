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

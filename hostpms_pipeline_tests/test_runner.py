"""``hostpms sync`` with more raw data waiting than one run may read."""

from hostpms_pipeline_tests.test_cli import count_bookings, environment, hostpms  # noqa: F401 - fixture
from hostpms_pipeline_tests.test_pipeline import visible_reservations


def test_sync_runs_again_until_no_raw_file_is_left_pending(
    environment,  # noqa: F811 - the imported fixture
    pg_url,
    pg_schema,
    running_simulator,
):
    env = {**environment, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001", "HOSTPMS_MAX_RECORDS_PER_RUN": "50"}
    done = hostpms("sync", env=env)
    assert done.returncode == 0, done.stderr
    assert "still pending, running again" in done.stdout  # a run read only part of what landed
    assert count_bookings(pg_url, pg_schema) == {
        "PT-LIS-001": len(visible_reservations(running_simulator, "PT-LIS-001"))
    }

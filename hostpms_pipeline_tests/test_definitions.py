"""The code location loads, and its schedule asks for the right runs."""

import shutil
from datetime import UTC, datetime

from dagster import AssetKey, DagsterInstance, Definitions, build_schedule_context

from hostpms_pipeline.cli.commands import PROJECT_ROOT
from hostpms_pipeline.definitions import defs
from hostpms_pipeline.defs.checks import (
    ACCOUNTED_FOR_SPEC,
    BLOCKING_RULES,
    QUALITY_SPECS,
    WARNING_RULES,
    WEBHOOK_LAG_SPEC,
)
from hostpms_pipeline.defs.partitions import live_partition_key, sync_scope
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.settings import get_settings


def test_definitions_load():
    Definitions.validate_loadable(defs)


def test_asset_graph_runs_raw_to_postgres_and_parquet():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "hostpms/raw_reservations",
        "hostpms/mapped_bookings",
        "hostpms/deduplicated_bookings",
        "hostpms/bookings",
        "hostpms/bookings_parquet",
    }
    parents = graph.get(AssetKey(["hostpms", "bookings_parquet"])).parent_keys
    assert AssetKey(["hostpms", "bookings"]) in parents


def test_bad_data_checks_block_postgres_and_warnings_do_not():
    specs = {spec.name: spec for spec in [*QUALITY_SPECS, ACCOUNTED_FOR_SPEC]}
    blocking = {name for name, spec in specs.items() if spec.blocking}
    assert set(BLOCKING_RULES) | {"every_raw_record_accounted_for"} <= blocking
    assert not blocking & set(WARNING_RULES)
    registered = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    others = {
        "postgres_matches_parquet",
        "every_property_synced_recently",
        WEBHOOK_LAG_SPEC.name,
        "raw_files_intact",
    }
    assert set(specs) | others == registered


def test_hourly_schedule_requests_the_live_partition_of_every_property():
    schedule = defs.resolve_schedule_def("hostpms_hourly_poll")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.execution_timezone == "Europe/Lisbon"
    moment = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    context = build_schedule_context(
        scheduled_execution_time=moment, repository_def=defs.get_repository_def()
    )
    requests = list(schedule.evaluate_tick(context).run_requests)
    scopes = [sync_scope(request.partition_key) for request in requests]
    assert [scope.property_id for scope in scopes] == list(get_settings().property_ids)
    assert all(scope.is_live(moment) for scope in scopes)
    assert len({request.run_key for request in requests}) == len(requests)


def test_instance_config_never_runs_one_property_twice_at_once(tmp_path):
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    queue = DagsterInstance.from_config(str(tmp_path)).get_concurrency_config().run_queue_config
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits[PROPERTY_TAG]["limit"] == 1
    assert limits[PROPERTY_TAG]["value"] == {"applyLimitPerUniqueValue": True}


def test_instance_config_dequeues_every_second_and_launches_runs_in_parallel(tmp_path):
    # Webhook drops reach PostgreSQL within seconds only if queued runs do not wait 5 s
    # for the next dequeue, nor for each other's worker processes to start.
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    coordinator = instance.run_coordinator
    assert coordinator.dequeue_interval_seconds == 1
    assert coordinator.dequeue_use_threads
    assert instance.get_sensor_settings()["use_threads"]


def test_full_resync_is_one_launch_in_the_ui():
    job = defs.resolve_job_def("hostpms_full_resync_job")
    config = job.get_run_config_for_partition_key(str(live_partition_key("PT-LIS-001")))
    assert config["ops"]["hostpms__raw_reservations"]["config"] == {"full_resync": True}

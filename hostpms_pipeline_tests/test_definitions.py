"""The code location loads, and its schedule asks for the right runs."""

import shutil
from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    DynamicPartitionsDefinition,
    build_schedule_context,
    instance_for_test,
)

from hostpms_pipeline.cli.commands import INSTANCE_CONFIG
from hostpms_pipeline.definitions import defs as load_defs
from hostpms_pipeline.defs.checks import ACCOUNTED_FOR, WEBHOOK_LAG
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import (
    PROPERTIES_PARTITIONS_NAME,
    live_partition_key,
    register_properties,
    sync_scope,
)
from hostpms_pipeline.defs.resources import PostgresResource
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.engine.quality import batch_rules
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.settings import get_settings

defs = load_defs()


def test_definitions_load():
    Definitions.validate_loadable(defs)


def test_settings_are_read_when_the_code_location_loads_not_at_import(monkeypatch):
    monkeypatch.setenv("HOSTPMS_HISTORY_START", "2025-06-01")
    get_settings.cache_clear()
    try:
        loaded = load_defs()
    finally:
        get_settings.cache_clear()
    raw = loaded.resolve_assets_def(entity_keys(ENTITIES[0]).raw)
    months = raw.partitions_def.get_partitions_def_for_dimension("month")
    assert months.get_first_partition_key() == "2025-06-01"


def test_properties_are_a_dynamic_dimension_that_sync_runs_register():
    raw = defs.resolve_assets_def(entity_keys(ENTITIES[0]).raw)
    properties = raw.partitions_def.get_partitions_def_for_dimension("property")
    assert isinstance(properties, DynamicPartitionsDefinition)
    with DagsterInstance.ephemeral() as instance:
        assert register_properties(instance, ["PT-LIS-001", "ES-BCN-009"]) == [
            "PT-LIS-001",
            "ES-BCN-009",
        ]
        assert register_properties(instance, ["PT-LIS-001"]) == []  # already there
        assert properties.get_partition_keys(dynamic_partitions_store=instance) == [
            "PT-LIS-001",
            "ES-BCN-009",
        ]


def test_each_entity_is_its_own_chain_from_raw_to_postgres_and_parquet():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected = set()
    for spec in ENTITIES:
        chain = entity_keys(spec)
        expected |= {key.to_user_string() for key in vars(chain).values()}
        groups = {graph.get(key).group_name for key in vars(chain).values()}
        assert groups == {spec.table}
        assert chain.raw in graph.get(chain.mapped).parent_keys
        assert chain.mapped in graph.get(chain.deduplicated).parent_keys
        assert chain.deduplicated in graph.get(chain.table).parent_keys
        assert chain.table in graph.get(chain.parquet).parent_keys
    assert keys == expected
    assert "hostpms/guests" in keys and "hostpms/bookings_parquet" in keys


def test_bad_data_checks_block_postgres_and_warnings_do_not():
    check_keys = defs.resolve_asset_graph().asset_check_keys
    for spec in ENTITIES:
        chain = entity_keys(spec)
        rules = batch_rules(spec)
        blocking = {rule.name for rule in rules if rule.blocking}
        assert {f"unique_{spec.row}_key", "required_fields"} <= blocking
        assert "mapped_values_known" not in blocking
        registered = {key.name for key in check_keys if key.asset_key == chain.deduplicated}
        assert registered == {rule.name for rule in rules}
        specs = defs.resolve_assets_def(chain.deduplicated).check_specs
        assert {s.name for s in specs if s.blocking} == blocking
        on_mapped = {key.name for key in check_keys if key.asset_key == chain.mapped}
        assert on_mapped == {ACCOUNTED_FOR, "raw_files_intact"}
        on_table = {key.name for key in check_keys if key.asset_key == chain.table}
        assert {WEBHOOK_LAG, "every_property_synced_recently"} <= on_table
        on_parquet = {key.name for key in check_keys if key.asset_key == chain.parquet}
        assert on_parquet == {"postgres_matches_parquet"}


def test_hourly_schedule_requests_the_live_partition_of_every_property(pg_url, pg_schema):
    schedule = defs.resolve_schedule_def("hostpms_hourly_poll")
    assert schedule.cron_schedule == "0 * * * *"
    assert schedule.execution_timezone == "Europe/Lisbon"
    moment = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    with instance_for_test() as instance:
        context = build_schedule_context(
            instance=instance,
            scheduled_execution_time=moment,
            repository_def=defs.get_repository_def(),
            resources={"postgres": PostgresResource(url=pg_url, db_schema=pg_schema)},
        )
        requests = list(schedule.evaluate_tick(context).run_requests)
        registered = instance.get_dynamic_partitions(PROPERTIES_PARTITIONS_NAME)
    scopes = [sync_scope(request.partition_key) for request in requests]
    assert [scope.property_id for scope in scopes] == list(get_settings().property_ids)
    assert registered == list(get_settings().property_ids)
    assert all(scope.is_live(moment) for scope in scopes)
    assert len({request.run_key for request in requests}) == len(requests)


def test_instance_config_never_runs_one_property_twice_at_once(tmp_path):
    shutil.copy(INSTANCE_CONFIG, tmp_path / "dagster.yaml")
    queue = DagsterInstance.from_config(str(tmp_path)).get_concurrency_config().run_queue_config
    limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
    assert limits[PROPERTY_TAG]["limit"] == 1
    assert limits[PROPERTY_TAG]["value"] == {"applyLimitPerUniqueValue": True}


def test_instance_config_dequeues_every_second_and_launches_runs_in_parallel(tmp_path):
    # Webhook drops reach PostgreSQL within seconds only if queued runs do not wait 5 s
    # for the next dequeue, nor for each other's worker processes to start.
    shutil.copy(INSTANCE_CONFIG, tmp_path / "dagster.yaml")
    instance = DagsterInstance.from_config(str(tmp_path))
    coordinator = instance.run_coordinator
    assert coordinator.dequeue_interval_seconds == 1
    assert coordinator.dequeue_use_threads
    assert instance.get_sensor_settings()["use_threads"]


def test_full_resync_is_one_launch_in_the_ui():
    job = defs.resolve_job_def("hostpms_full_resync_job")
    config = job.get_run_config_for_partition_key(str(live_partition_key("PT-LIS-001")))
    for spec in ENTITIES:
        op = entity_keys(spec).raw.to_python_identifier()
        assert config["ops"][op]["config"] == {"full_resync": True}


def test_alarms_start_on_and_what_loads_data_waits_for_the_operator():
    running = DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("hostpms_sync_failure_alert").default_status == running
    assert defs.resolve_sensor_def("hostpms_sync_lag_alarm").default_status == running
    assert defs.resolve_sensor_def("hostpms_webhook_drops").default_status != running
    assert defs.resolve_schedule_def("hostpms_hourly_poll").default_status != running


def test_no_retry_wait_means_no_retries(monkeypatch):
    from hostpms_pipeline.defs.step_errors import sync_retry_policy
    from hostpms_pipeline.settings import get_settings

    for wait, retries in (("0", 0), ("600", 3)):
        monkeypatch.setenv("HOSTPMS_MAX_RETRY_WAIT_SECONDS", wait)
        get_settings.cache_clear()
        assert sync_retry_policy().max_retries == retries
    get_settings.cache_clear()

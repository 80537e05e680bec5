"""The whole asset graph, materialized against the simulator, real PostgreSQL and Parquet."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest
from dagster import MultiPartitionKey, materialize

from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import (
    MONTH_DIMENSION,
    PROPERTY_DIMENSION,
    live_partition_key,
    sync_scope,
)
from hostpms_pipeline.defs.resources import (
    BatchIOManager,
    HostPMSResource,
    ObjectStoreResource,
    PostgresResource,
)
from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.entities import ENTITIES, RESERVATIONS
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET, get_settings
from hostpms_pipeline.warehouse import database, entity_store, outbox
from hostpms_pipeline_tests.fixtures.definitions import (
    connector_graph,
    instance_with_properties,
    materialization_metadata,
)

# Every test here runs the transform and the load: once per engine.
pytestmark = pytest.mark.both_engines


@pytest.fixture
def resources(running_simulator, pg_url, pg_schema, tmp_path, engine_resource):
    postgres = PostgresResource(url=pg_url, db_schema=pg_schema)
    return {
        "hostpms": HostPMSResource(
            base_url=running_simulator.base_url,
            client_id=SIMULATOR_CLIENT_ID,
            client_secret=SIMULATOR_CLIENT_SECRET,
            rate_limit_per_minute=running_simulator.simulator.config.rate_limit,
            postgres=postgres,
        ),
        "raw_store": ObjectStoreResource(url=str(tmp_path / "raw")),
        "processed_store": ObjectStoreResource(url=str(tmp_path / "processed")),
        "postgres": postgres,
        "batch_io_manager": BatchIOManager(),
        "engine": engine_resource,
    }


@pytest.fixture
def instance():
    with instance_with_properties() as instance:
        yield instance


def run(resources, instance, partition_key):
    return materialize(
        connector_graph(),
        resources=resources,
        instance=instance,
        partition_key=str(partition_key),
        raise_on_error=False,
    )


def stored(resources):
    with resources["postgres"].connect() as conn:
        return entity_store.stored_keys(conn, RESERVATIONS)


def visible_records(running_simulator, property_id, collection="reservations"):
    simulator = running_simulator.simulator
    return simulator.dataset.timeline(property_id, collection).latest_keys(simulator.clock.now())


def visible_reservations(running_simulator, property_id):
    return visible_records(running_simulator, property_id)


def failed_checks(result) -> list[str]:
    return [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]


def test_every_property_syncs_with_every_check_passing(resources, instance, running_simulator):
    *first, last = get_settings().property_ids
    for property_id in first:
        result = run(resources, instance, live_partition_key(property_id))
        assert result.success
        # Until every property has synced, the sync-lag checks rightly fail.
        assert set(failed_checks(result)) == {
            "every_property_synced_recently",
            "properties_healthy",
        }
    result = run(resources, instance, live_partition_key(last))
    assert result.success
    every_check = {c for a in connector_graph() for c in getattr(a, "check_keys", ())}
    evaluated = {(e.asset_key, e.check_name) for e in result.get_asset_check_evaluations()}
    assert evaluated == {(key.asset_key, key.name) for key in every_check}
    assert failed_checks(result) == []
    processed = resources["processed_store"].url
    for spec in ENTITIES:  # every entity, in PostgreSQL and Parquet alike
        with resources["postgres"].connect() as conn:
            keys = entity_store.stored_keys(conn, spec)
        for property_id in get_settings().property_ids:
            ids = keys.filter(pc.equal(keys["hotel_id"], property_id))["external_id"]
            expected = visible_records(running_simulator, property_id, spec.collection)
            assert set(ids.to_pylist()) == set(expected) and len(ids) == len(expected)
        parquet = parquet_store.read_rows(processed, spec)
        assert pipeline.key_set(parquet) == pipeline.key_set(keys)
        assert parquet.num_rows == keys.num_rows


def test_a_second_run_changes_nothing(resources, instance):
    partition = live_partition_key("PT-LIS-001")
    assert run(resources, instance, partition).success
    before = stored(resources)
    second = run(resources, instance, partition)
    assert second.success
    assert stored(resources).equals(before)  # same ids, versions and state hashes
    loaded = materialization_metadata(second, entity_keys(RESERVATIONS).table)
    assert loaded["inserted"].value == 0 and loaded["versions_bumped"].value == 0


def test_a_change_at_hostpms_bumps_the_version_once(resources, instance, running_simulator):
    partition = live_partition_key("ES-MAD-001")
    assert run(resources, instance, partition).success
    simulator = running_simulator.simulator
    simulator.advance_clock(3600)
    changed = visible_reservations(running_simulator, "ES-MAD-001")[:2]
    simulator.change_records("ES-MAD-001", "reservations", changed)
    assert run(resources, instance, partition).success
    keys = stored(resources).to_pylist()
    versions = {
        row["external_id"]: row["version"] for row in keys if row["hotel_id"] == "ES-MAD-001"
    }
    assert all(versions[external_id] in (1, 2) for external_id in changed)
    assert sum(1 for v in versions.values() if v > 1) <= len(changed)


def test_the_parquet_step_merges_what_the_bookings_step_wrote(resources, instance):
    partition = live_partition_key("PT-POR-002")
    first = run(resources, instance, partition)
    assert first.success
    exported = materialization_metadata(first, entity_keys(RESERVATIONS).parquet)
    # Every day this run queued was merged from the rows it kept: none read back.
    assert (
        exported["partitions_merged_from_this_run"].value
        == exported["partitions_rewritten"].value
        > 0
    )
    with resources["postgres"].connect() as conn:
        stored = entity_store.fetch_rows(conn, RESERVATIONS)
    in_postgres = parquet_store.dataset_rows(RESERVATIONS, stored).sort_by("id")
    assert (
        parquet_store.read_rows(resources["processed_store"].url, RESERVATIONS)
        .sort_by("id")
        .equals(in_postgres)
    )


def test_backfill_of_one_past_month_loads_exactly_that_window(
    resources, instance, running_simulator
):
    now = running_simulator.simulator.clock.now()
    month = f"{now.year - 1}-{now.month:02d}-01"
    partition = MultiPartitionKey({PROPERTY_DIMENSION: "PT-POR-002", MONTH_DIMENSION: month})
    scope = sync_scope(str(partition))
    assert not scope.is_live()
    result = run(resources, instance, partition)
    assert result.success
    with resources["postgres"].connect() as conn:
        rows = entity_store.fetch_rows(conn, RESERVATIONS, hotel_id="PT-POR-002")
    updated = rows["source_updated_at"].to_pylist()
    assert updated, "the simulator has history in every month of the last two years"
    assert all(scope.window_start <= moment < scope.window_end for moment in updated)
    with database.connect(resources["postgres"].url, resources["postgres"].db_schema) as conn:
        assert conn.execute("SELECT count(*) FROM sync_checkpoints").fetchone()[0] == 0


def test_a_failed_parquet_export_is_caught_up_by_the_next_one(resources, instance, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the processed bucket should be")
    failing = {**resources, "processed_store": ObjectStoreResource(url=str(blocked))}
    result = run(failing, instance, live_partition_key("PT-LIS-001"))
    assert not result.success  # PostgreSQL committed, Parquet could not be written
    # In the UI: materialize the Parquet datasets alone; each catches up from the outbox.
    datasets = [entity_keys(spec).parquet for spec in ENTITIES]
    caught_up = materialize(
        connector_graph(),
        selection=datasets,
        resources=resources,
        instance=instance,
        partition_key=str(live_partition_key("PT-LIS-001")),
    )
    assert caught_up.success
    for spec in ENTITIES:
        with resources["postgres"].connect() as conn:
            in_postgres = entity_store.stored_keys(conn, spec)
        exported = materialization_metadata(caught_up, entity_keys(spec).parquet)
        assert exported["rows_written"].value == in_postgres.num_rows > 0
        parquet = parquet_store.read_rows(resources["processed_store"].url, spec)
        assert pipeline.key_set(parquet) == pipeline.key_set(in_postgres)


def test_the_export_rewrites_in_bounded_groups_and_still_equals_postgres(resources, instance):
    assert run(resources, instance, live_partition_key("PT-LIS-001")).success
    with resources["postgres"].connect() as conn:
        days = [(d.year, d.month, d.day) for (d,) in conn.execute(
            "SELECT DISTINCT (booked_at AT TIME ZONE 'UTC')::date FROM bookings")]  # fmt: skip
        outbox.enqueue(conn, "bookings", days)
        conn.commit()
        counts = entity_store.rows_per_day(conn, RESERVATIONS, days)
        groups = list(pipeline._day_groups(counts, days, rows_per_group=20))
        exported = pipeline.export_parquet(
            conn, RESERVATIONS, resources["processed_store"].url, rows_per_group=20
        )
        in_postgres = entity_store.stored_keys(conn, RESERVATIONS)
    assert len(groups) > 3
    assert all(sum(counts[day] for day in group) <= 20 or len(group) == 1 for group in groups)
    assert sorted(day for group in groups for day in group) == sorted(days)
    assert exported.partitions == len(days) and exported.rows == in_postgres.num_rows
    parquet = parquet_store.read_rows(resources["processed_store"].url, RESERVATIONS)
    assert pipeline.key_set(parquet) == pipeline.key_set(in_postgres)


def test_row_count_is_the_table_and_the_dataset_not_the_last_batch(resources, instance):
    # The UI's "Row count" of a table is how many rows it holds; a run's batch is in its own keys.
    assert run(resources, instance, live_partition_key("PT-LIS-001")).success
    again = run(resources, instance, live_partition_key("PT-POR-002"))
    assert again.success
    for spec in ENTITIES:
        keys = entity_keys(spec)
        with resources["postgres"].connect() as conn:
            by_hotel = entity_store.row_counts(conn, spec)
        table = materialization_metadata(again, keys.table)
        assert table["dagster/row_count"].value == sum(by_hotel.values())
        assert table["property_rows"].value == by_hotel["PT-POR-002"] < sum(by_hotel.values())
        assert table["inserted"].value == by_hotel["PT-POR-002"]
        dataset = materialization_metadata(again, keys.parquet)
        assert dataset["dagster/row_count"].value == sum(by_hotel.values())
        for batch in (keys.raw, keys.mapped, keys.deduplicated):
            assert "dagster/row_count" not in materialization_metadata(again, batch)


def test_a_first_pass_shows_every_month_it_loaded_as_materialized(resources, instance):
    """The live partition's first pass reads the whole history: the partitions page must not
    show those months as missing (they are in PostgreSQL)."""
    live = live_partition_key("PT-LIS-001")
    assert run(resources, instance, live).success
    history_start = get_settings().history_start
    for spec in ENTITIES:
        keys = entity_keys(spec)
        for key in (keys.raw, keys.mapped, keys.deduplicated, keys.table, keys.parquet):
            done = instance.get_materialized_partitions(key)
            assert f"{history_start}|PT-LIS-001" in done
            assert str(live) in done
            assert not any(p.endswith("|PT-POR-002") for p in done)  # not synced: still missing
    # Reported once: a second run adds no more materializations of past months.
    before = len(
        instance.fetch_materializations(entity_keys(RESERVATIONS).table, limit=1000).records
    )
    assert run(resources, instance, live).success
    after = len(
        instance.fetch_materializations(entity_keys(RESERVATIONS).table, limit=1000).records
    )
    assert after == before + 1  # the live month's own

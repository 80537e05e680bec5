"""The webhook sensor: its cursor, late and out-of-order drops, >1,000 objects, and the whole path
simulator → receiver → raw store → sensor → run → PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from dagster import (
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    build_sensor_context,
    materialize,
)

from hostpms_pipeline.defs.jobs import hostpms_webhook_job
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.resources import (
    BatchIOManager,
    HostPMSResource,
    ObjectStoreResource,
    PostgresResource,
)
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.defs.sensors import hostpms_webhook_drops
from hostpms_pipeline.entities import GUESTS, PAYMENTS, RESERVATIONS, ROOMS
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.credentials import MissingSecret
from hostpms_pipeline.ingest import webhook_discovery
from hostpms_pipeline.lake.raw_layout import webhook_key
from hostpms_pipeline.simulator import run_in_background
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.simulator.service import HostPMSSimulator
from hostpms_pipeline.warehouse import entity_store, ledger
from hostpms_pipeline.webhooks.acceptance import WebhookAcceptor
from hostpms_pipeline.webhooks.idempotency import PostgresIdempotencyStore
from hostpms_pipeline.webhooks.receiver import create_app
from hostpms_pipeline_tests.fixtures.definitions import connector_graph, instance_with_properties
from hostpms_pipeline_tests.fixtures.simulator import subscribe_webhooks

PROPERTY = "PT-LIS-001"


def reservation(reservation_id: str, updated_at: datetime, status: str = "confirmado") -> dict:
    return {
        "reservation_id": reservation_id,
        "property_id": PROPERTY,
        "guest": {"name": "x", "email": "x@example.pt", "phone": "+351900000000", "country": "PT"},
        "room": {"type": "Quarto Duplo", "number": "201", "floor": 2},
        "dates": {
            "check_in": "2026-12-20",
            "check_out": "2026-12-23",
            "created_at": "2026-11-01T10:00:00Z",
        },
        "pricing": {"total": 318.0, "currency": "EUR", "rate_plan": "Flexível", "iva": 18.0},
        "status": status,
        "channel": "direto",
        "payment_method": "mbway",
        "updated_at": contract.format_timestamp(updated_at),
    }


def drop(
    store, arrived: datetime, event_id: str, record: dict, event: str = "reservation.updated"
) -> str:
    body = {
        "kind": "webhook",
        "source": "hostpms",
        "property_id": PROPERTY,
        "collection": "reservations",
        "received_at": contract.format_timestamp(arrived),
        "event_id": event_id,
        "event_type": event,
        "event_created_at": contract.format_timestamp(arrived),
        "data": [record],
    }
    return store.put(webhook_key(PROPERTY, event, event_id, arrived), orjson.dumps(body))


@pytest.fixture
def sensor_resources(pg_url, pg_schema, tmp_path):
    return {
        "raw_store": ObjectStoreResource(url=str(tmp_path / "raw")),
        "postgres": PostgresResource(url=pg_url, db_schema=pg_schema),
    }


def tick(resources, cursor: str | None, instance: DagsterInstance | None = None):
    with DagsterInstance.ephemeral() as ephemeral:
        context = build_sensor_context(
            instance=instance or ephemeral, cursor=cursor, resources=resources
        )
        return hostpms_webhook_drops(context)


def pending_webhook_files(resources) -> list[str]:
    with resources["postgres"].connect() as conn:
        return ledger.pending_files(conn, PROPERTY, kind="webhook")


def test_new_drops_start_one_run_per_property_and_are_never_entered_twice(sensor_resources):
    store = sensor_resources["raw_store"].open()
    now = datetime.now(UTC)
    for i in range(3):
        drop(store, now - timedelta(seconds=30 - i), f"evt_{i}", reservation(f"RSV-{i}", now))
    first = tick(sensor_resources, None)
    assert [
        request.partition_key.keys_by_dimension["property"] for request in first.run_requests
    ] == [PROPERTY]
    assert len(pending_webhook_files(sensor_resources)) == 3
    second = tick(sensor_resources, first.cursor)
    assert not second.run_requests
    assert len(pending_webhook_files(sensor_resources)) == 3


def test_no_second_load_is_asked_for_while_one_waits_in_the_queue(sensor_resources):
    store = sensor_resources["raw_store"].open()
    now = datetime.now(UTC)
    drop(store, now - timedelta(seconds=5), "evt_1", reservation("RSV-1", now))
    with DagsterInstance.ephemeral() as instance:
        queued = DagsterRun(job_name=hostpms_webhook_job.name, status=DagsterRunStatus.NOT_STARTED,
                            tags={PROPERTY_TAG: PROPERTY})  # fmt: skip
        instance.add_run(queued)
        waiting = tick(sensor_resources, None, instance)
        assert not waiting.run_requests
        assert len(pending_webhook_files(sensor_resources)) == 1  # the queued load will take it
        instance.delete_run(queued.run_id)  # the queued load started and took it
        drop(store, now - timedelta(seconds=2), "evt_2", reservation("RSV-2", now))
        assert len(tick(sensor_resources, waiting.cursor, instance).run_requests) == 1


def test_late_and_out_of_order_drops_inside_the_look_back_are_picked_up(sensor_resources):
    store = sensor_resources["raw_store"].open()
    now = datetime.now(UTC)
    drop(store, now - timedelta(seconds=5), "evt_newer", reservation("RSV-1", now))
    first = tick(
        sensor_resources, json.dumps({"listed_through": (now - timedelta(seconds=1)).isoformat()})
    )
    assert len(first.run_requests) == 1
    # An upload that started before the last tick (its key sorts earlier) becomes visible only now.
    drop(store, now - timedelta(minutes=3), "evt_late", reservation("RSV-2", now))
    second = tick(sensor_resources, first.cursor)
    assert len(second.run_requests) == 1
    assert len(pending_webhook_files(sensor_resources)) == 2


def test_a_tick_lists_from_its_cursor_not_everything_ever_landed(sensor_resources):
    store = sensor_resources["raw_store"].open()
    now = datetime.now(UTC)
    drop(store, now - timedelta(days=3), "evt_old", reservation("RSV-OLD", now))
    first = tick(sensor_resources, json.dumps({"listed_through": now.isoformat()}))
    assert not first.run_requests  # three days back lies outside this tick's window...
    with sensor_resources["postgres"].connect() as conn:
        # ...but a load's catch-up finds it
        assert webhook_discovery.catch_up(store, conn, PROPERTY, RESERVATIONS)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_more_than_a_thousand_new_objects_in_one_tick(backend, sensor_resources, request):
    if backend == "s3":
        url = request.getfixturevalue("s3_bucket_url")
        sensor_resources = {**sensor_resources, "raw_store": ObjectStoreResource(url=url)}
    store = sensor_resources["raw_store"].open()
    now = datetime.now(UTC)
    for i in range(1_050):  # S3 lists 1,000 keys a page
        drop(
            store,
            now - timedelta(seconds=60) + timedelta(milliseconds=i),
            f"evt_{i:05d}",
            reservation(f"RSV-{i}", now),
        )
    result = tick(sensor_resources, json.dumps({"listed_through": now.isoformat()}))
    assert len(result.run_requests) == 1
    assert len(pending_webhook_files(sensor_resources)) == 1_050


# One event of each entity's webhooks, as HostPMS signs and sends them.
ENTITY_EVENTS = [
    ("reservation.updated", RESERVATIONS),
    ("guest.created", GUESTS),
    ("room.status_changed", ROOMS),
    ("payment.received", PAYMENTS),
]


@pytest.mark.parametrize("event_type, spec", ENTITY_EVENTS, ids=[e for e, _ in ENTITY_EVENTS])
def test_simulator_webhook_reaches_postgres_through_receiver_sensor_and_run(
    simulator_config, sensor_resources, pg_url, pg_schema, event_type, spec, engine_resource
):
    # engine_resource: on Spark, the session is up before the webhook (the lag it measures
    # is the pipeline's, not a JVM's start; docs/spark.md).
    store = sensor_resources["raw_store"].open()
    idempotency = PostgresIdempotencyStore(sensor_resources["postgres"].connect)
    secrets: dict[str, list[str]] = {}

    def secrets_of(property_id: str) -> list[str]:
        if property_id not in secrets:
            raise MissingSecret(property_id)
        return secrets[property_id]

    receiver = create_app(WebhookAcceptor(secrets_of, store, idempotency))
    with (
        run_in_background(HostPMSSimulator(simulator_config)) as running,
        serve_app_in_background(receiver) as port,
    ):
        url = f"http://127.0.0.1:{port}/webhooks/hostpms"
        secrets[PROPERTY] = [subscribe_webhooks(running, PROPERTY, url, [event_type])]
        event_id = running.simulator.emit_event(PROPERTY, event_type)
        deadline = time.monotonic() + 10
        while not list(store.list(f"hostpms/{PROPERTY}/webhooks/")) and time.monotonic() < deadline:
            time.sleep(0.05)
    landed = orjson.loads(store.get(next(iter(store.list(f"hostpms/{PROPERTY}/webhooks/"))).key))
    assert landed["event_id"] == event_id
    record_id = landed["data"][0][spec.id_field]

    result = tick(sensor_resources, None)
    (run_request,) = result.run_requests
    run = materialize(
        connector_graph(),
        selection=hostpms_webhook_job.selection,
        partition_key=str(run_request.partition_key),
        resources={
            **sensor_resources,
            "processed_store": ObjectStoreResource(
                url=sensor_resources["raw_store"].url + "-processed"
            ),
            "batch_io_manager": BatchIOManager(),
            "engine": engine_resource,
            # Not called: a webhook load does not poll.
            "hostpms": HostPMSResource(
                base_url="http://127.0.0.1:9/v3", postgres=sensor_resources["postgres"]
            ),
        },
        instance=instance_with_properties(),
    )
    assert run.success
    materialized = {event.asset_key for event in run.get_asset_materialization_events()}
    assert entity_keys(spec).raw not in materialized
    assert {entity_keys(spec).table, entity_keys(spec).parquet} <= materialized
    with sensor_resources["postgres"].connect() as conn:
        rows = entity_store.fetch_rows(conn, spec, hotel_id=PROPERTY).to_pylist()
    (row,) = [r for r in rows if r["external_id"] == record_id]
    assert row["event_received_at"] is not None
    assert row["synced_at"] >= row["event_received_at"]
    (lag,) = [
        e
        for e in run.get_asset_check_evaluations()
        if e.check_name == "webhook_lag_under_30s" and e.asset_key == entity_keys(spec).table
    ]
    assert lag.passed and lag.metadata["webhook_rows"].value == 1

"""Alerts: the PRD's thresholds, and each notifier delivering for real (loopback Slack, moto SNS)."""

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    build_run_status_sensor_context,
    build_sensor_context,
    materialize,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hostpms_pipeline.defs import alerts
from hostpms_pipeline.defs.cli_syncs import hostpms_cli_syncs
from hostpms_pipeline.defs.resources import (
    BatchIOManager,
    HostPMSResource,
    NotifierResource,
    ObjectStoreResource,
    PostgresResource,
)
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.defs.sensors import hostpms_sync_failure_alert, hostpms_sync_lag_alarm
from hostpms_pipeline.operations import status
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.warehouse import checkpoints, sync_reports
from hostpms_pipeline_tests.fixtures.definitions import connector_graph, instance_with_properties
from hostpms_pipeline_tests.fixtures.s3 import TEST_ENV, TEST_REGION

ALERT = alerts.Alert("critical", "PT-LIS-001", "3 consecutive failed sync run(s)", "see the UI")


@pytest.fixture
def slack():
    received: list[dict] = []

    async def hook(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"ok": True})

    with serve_app_in_background(
        Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    ) as port:
        yield f"http://127.0.0.1:{port}/hook", received


def test_slack_notifier_posts_the_alert(slack):
    url, received = slack
    NotifierResource(slack_webhook_url=url).notifier().notify(ALERT)
    assert received == [{"text": ALERT.text()}]


def test_sns_notifier_publishes_to_the_topic(moto_endpoint_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint_url)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    sns, sqs = (
        boto3.client("sns", region_name=TEST_REGION),
        boto3.client("sqs", region_name=TEST_REGION),
    )
    topic = sns.create_topic(Name="hostpms-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    NotifierResource(sns_topic_arn=topic).notifier().notify(ALERT)
    (message,) = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)["Messages"]
    assert json.loads(json.loads(message["Body"])["Message"])["severity"] == "critical"


def test_log_notifier_is_the_default(caplog):
    NotifierResource().notifier().notify(ALERT)
    assert ALERT.text() in caplog.text


@pytest.fixture
def failing_resources(pg_url, pg_schema, tmp_path, running_simulator, engine_resource):
    postgres = PostgresResource(url=pg_url, db_schema=pg_schema)
    return {
        "hostpms": HostPMSResource(
            base_url=running_simulator.base_url,
            client_id=SIMULATOR_CLIENT_ID,
            client_secret="wrong-secret",
            postgres=postgres,
        ),  # fmt: skip
        "raw_store": ObjectStoreResource(url=str(tmp_path / "raw")),
        "processed_store": ObjectStoreResource(url=str(tmp_path / "processed")),
        "postgres": postgres,
        "batch_io_manager": BatchIOManager(),
        "engine": engine_resource,
    }


def test_the_third_failure_in_a_row_is_critical(failing_resources, slack):
    url, received = slack
    partition = "2026-11-01|PT-LIS-001"
    with instance_with_properties() as instance:
        for _ in range(3):
            run = materialize(
                connector_graph(), resources=failing_resources, instance=instance, partition_key=partition,
                tags={PROPERTY_TAG: "PT-LIS-001"}, raise_on_error=False,
            )  # fmt: skip
            assert not run.success
            failure = next(
                e for e in run.all_events if e.event_type == DagsterEventType.RUN_FAILURE
            )
            context = build_run_status_sensor_context(
                sensor_name="hostpms_sync_failure_alert",
                dagster_event=failure,
                dagster_instance=instance,
                dagster_run=run.dagster_run,
                resources={
                    "notifier": NotifierResource(slack_webhook_url=url),
                    "postgres": failing_resources["postgres"],
                },
            ).for_run_failure()
            hostpms_sync_failure_alert(context)
    severities = [message["text"].split("]")[0] for message in received]
    assert severities == ["[WARNING", "[WARNING", "[CRITICAL"]
    assert "3 consecutive" in received[-1]["text"]


def test_sync_lag_over_two_hours_alerts_once_per_episode(pg_url, pg_schema, slack):
    url, received = slack
    postgres = PostgresResource(url=pg_url, db_schema=pg_schema)
    resources = {"postgres": postgres, "notifier": NotifierResource(slack_webhook_url=url)}
    with postgres.connect() as conn:
        for property_id, age in (
            ("PT-LIS-001", timedelta(minutes=10)),
            ("PT-POR-002", timedelta(hours=3)),
        ):
            checkpoints.save_checkpoint(conn, property_id, "reservations", datetime.now(UTC), None)
            conn.execute(
                "UPDATE sync_checkpoints SET updated_at = now() - %s WHERE property_id = %s",
                (age, property_id),
            )
    with DagsterInstance.ephemeral() as instance:
        first = build_sensor_context(instance=instance, resources=resources)
        hostpms_sync_lag_alarm(first)
        second = build_sensor_context(instance=instance, resources=resources, cursor=first.cursor)
        hostpms_sync_lag_alarm(second)
    alerted = sorted(message["text"].split(": ")[0] for message in received)
    # PT-POR-002 is 3 h behind; ES-MAD-001 never synced; PT-LIS-001 is fresh. Each alerts once.
    assert alerted == ["[CRITICAL] HostPMS ES-MAD-001", "[CRITICAL] HostPMS PT-POR-002"]


def test_failed_hostpms_syncs_alert_and_count_as_failures_in_a_row(
    pg_url, pg_schema, slack, tmp_path
):
    """`hostpms sync` runs no Dagster run: its failures, recorded in PostgreSQL, alert through
    the hostpms_cli_syncs sensor and count in `hostpms status`, until a sync succeeds."""
    url, received = slack
    postgres = PostgresResource(url=pg_url, db_schema=pg_schema)
    resources = {
        "postgres": postgres,
        "processed_store": ObjectStoreResource(url=str(tmp_path / "processed")),
        "notifier": NotifierResource(slack_webhook_url=url),
    }
    for _ in range(3):
        with postgres.connect() as conn:  # a transaction each: each its own finished_at
            sync_reports.record(conn, "PT-LIS-001", problem="HostPMS is unavailable (503)")
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources=resources)
        result = hostpms_cli_syncs(context)
        with postgres.connect() as conn:
            [failing] = status.collect(conn, instance, ["PT-LIS-001"])
            sync_reports.record(conn, "PT-LIS-001", loaded={})
        with postgres.connect() as conn:
            [recovered] = status.collect(conn, instance, ["PT-LIS-001"])
    severities = [message["text"].split("]")[0] for message in received]
    assert severities == ["[WARNING", "[WARNING", "[CRITICAL"]
    assert "3 consecutive" in received[-1]["text"] and "hostpms sync" in received[-1]["text"]
    assert result.asset_events == []  # nothing loaded, nothing materialized
    assert failing.consecutive_failures == 3 and "3 failed runs in a row" in failing.problems
    assert recovered.consecutive_failures == 0

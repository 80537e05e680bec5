"""EventBridge publishing of landed webhooks, through the Lambda as deployed, against moto's
server over HTTP: a bus with a rule that forwards to an SQS queue, read back from the queue."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from mangum import Mangum

from hostpms_pipeline import settings as settings_module
from hostpms_pipeline.lake.storage import open_store
from hostpms_pipeline.webhooks import lambda_handler
from hostpms_pipeline.webhooks.acceptance import WebhookAcceptor
from hostpms_pipeline.webhooks.events import (
    DETAIL_TYPE,
    FAILURE_MESSAGE,
    SOURCE,
    EventBridgePublisher,
    open_event_publisher,
)
from hostpms_pipeline.webhooks.idempotency import create_dynamodb_table
from hostpms_pipeline.webhooks.verification import parse_event
from hostpms_pipeline_tests.fixtures.s3 import TEST_REGION
from hostpms_pipeline_tests.test_webhook_lambda import CONTEXT, rest_v1_event, signed_now
from hostpms_pipeline_tests.test_webhook_lambda import webhook_secret as webhook_secret  # noqa: F401
from hostpms_pipeline_tests.test_webhook_receiver import (
    GUEST_PII,
    OLD_SECRET,
    PROPERTY,
    event_body,
    webhook_path,
)

EVENT_ID = "evt_8f14e45fceea167a"


@pytest.fixture
def bus_queue(s3_bucket_url: str) -> tuple[str, str]:
    """A fresh bus whose rule forwards this module's events to a fresh SQS queue."""
    events = boto3.client("events", region_name=TEST_REGION)
    sqs = boto3.client("sqs", region_name=TEST_REGION)
    suffix = uuid.uuid4().hex[:12]
    bus = f"hostpms-test-{suffix}"
    events.create_event_bus(Name=bus)
    queue_url = sqs.create_queue(QueueName=f"landed-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events.put_rule(
        Name="landed-webhooks",
        EventBusName=bus,
        EventPattern=orjson.dumps({"source": [SOURCE], "detail-type": [DETAIL_TYPE]}).decode(),
    )
    events.put_targets(
        Rule="landed-webhooks", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    return bus, queue_url


def received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=TEST_REGION)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [orjson.loads(message["Body"]) for message in messages]


@pytest.fixture
def lambda_with_bus(
    s3_bucket_url: str,
    webhook_secret: None,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[tuple[Mangum, dict[str, str]]]:
    """The deployed Lambda's environment, ``HOSTPMS_EVENT_BUS`` set by each test."""
    table = f"webhook-events-{uuid.uuid4().hex[:12]}"
    create_dynamodb_table(table, boto3.client("dynamodb", region_name=TEST_REGION))
    environment = {
        "HOSTPMS_IDEMPOTENCY_TABLE": table,
        "HOSTPMS_RAW_URL": s3_bucket_url,
        "HOSTPMS_USE_SECRETS_MANAGER": "true",
        "HOSTPMS_HOME": str(tmp_path / "home"),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings_module.get_settings.cache_clear()
    lambda_handler._default_handler.cache_clear()
    yield lambda_handler.handler, environment
    settings_module.get_settings.cache_clear()
    lambda_handler._default_handler.cache_clear()


def deliver(handler: Mangum, *secrets: str) -> dict[str, Any]:
    body = event_body(EVENT_ID)
    return handler(rest_v1_event("POST", webhook_path(), signed_now(body, *secrets), body), CONTEXT)


def test_a_landed_webhook_is_published_once_with_its_location_and_no_guest_data(
    lambda_with_bus: tuple[Mangum, dict[str, str]],
    bus_queue: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    handler, environment = lambda_with_bus
    bus, queue_url = bus_queue
    monkeypatch.setenv("HOSTPMS_EVENT_BUS", bus)

    first = deliver(handler)
    duplicate = deliver(handler, OLD_SECRET)

    assert (first["statusCode"], duplicate["statusCode"]) == (200, 200)
    [key] = [info.key for info in open_store(environment["HOSTPMS_RAW_URL"]).list("hostpms/")]
    [message] = received(queue_url)  # the duplicate published nothing
    assert (message["source"], message["detail-type"]) == (SOURCE, DETAIL_TYPE)
    assert message["detail"] == {
        "property_id": PROPERTY,
        "event_type": "reservation.updated",
        "event_id": EVENT_ID,
        "collection": "reservations",
        "event_created_at": "2026-11-24T13:00:01Z",
        "received_at": message["detail"]["received_at"],
        "location": f"{environment['HOSTPMS_RAW_URL']}/{key}",
    }
    text = orjson.dumps(message).decode()
    assert [pii for pii in GUEST_PII if pii in text] == []
    assert "guest" not in text and "RSV-0001" not in text  # no part of the record at all


def test_a_publishing_failure_still_answers_200_logs_and_counts_it(
    lambda_with_bus: tuple[Mangum, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler, environment = lambda_with_bus
    monkeypatch.setenv("HOSTPMS_EVENT_BUS", f"no-such-bus-{uuid.uuid4().hex[:8]}")

    with caplog.at_level(logging.WARNING, logger="hostpms_pipeline.webhooks.events"):
        response = deliver(handler)

    assert (response["statusCode"], orjson.loads(response["body"])["status"]) == (200, "accepted")
    assert len(list(open_store(environment["HOSTPMS_RAW_URL"]).list("hostpms/"))) == 1
    [line] = [r.getMessage() for r in caplog.records if FAILURE_MESSAGE in r.getMessage()]
    assert EVENT_ID in line and "ResourceNotFoundException" in line
    assert not any(pii in caplog.text for pii in GUEST_PII)


def test_publishing_is_off_unless_the_bus_is_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("HOSTPMS_EVENT_BUS", raising=False)
    settings_module.get_settings.cache_clear()
    try:
        acceptor = WebhookAcceptor(secrets=lambda _: [], store=None, idempotency=None)  # type: ignore[arg-type]
        assert open_event_publisher() is None and acceptor.events is None
        monkeypatch.setenv("HOSTPMS_EVENT_BUS", "hostpms-production")
        settings_module.get_settings.cache_clear()
        publisher = open_event_publisher()
        assert isinstance(publisher, EventBridgePublisher)
        assert publisher.bus_name == "hostpms-production"
    finally:
        settings_module.get_settings.cache_clear()


class _BrokenClient:
    def put_events(self, **_: Any) -> dict[str, Any]:
        raise RuntimeError("a bug, not an AWS error")


class _RefusingClient:
    """PutEvents answers 200 with a per-entry failure, as AWS does when it throttles one entry."""

    def put_events(self, **_: Any) -> dict[str, Any]:
        return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException"}]}


@pytest.mark.parametrize(
    ("client", "reason"),
    [(_BrokenClient(), "RuntimeError"), (_RefusingClient(), "ThrottlingException")],
    ids=["unexpected-error", "failed-entry"],
)
def test_announce_never_raises_and_counts_each_failure(
    client: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = EventBridgePublisher("hostpms-production", client=client)
    verified = parse_event(event_body(EVENT_ID), PROPERTY, "reservation.updated")
    now = datetime(2026, 11, 24, 13, 5, tzinfo=UTC)

    with caplog.at_level(logging.WARNING, logger="hostpms_pipeline.webhooks.events"):
        outcomes = [publisher.announce(verified, "s3://raw/key.json", now) for _ in range(2)]

    assert outcomes == [False, False] and publisher.failures == 2
    assert caplog.text.count(reason) == 2

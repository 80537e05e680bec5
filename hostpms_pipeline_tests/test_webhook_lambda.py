"""The receiver as an AWS Lambda behind API Gateway (REST v1 and HTTP v2 payloads), through Mangum.

Deployed as on AWS: raw store on S3, idempotency in DynamoDB, secrets in Secrets
Manager, all served by moto's server over HTTP.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import orjson
import pytest
from botocore.client import BaseClient
from mangum import Mangum

from hostpms_pipeline import settings as settings_module
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.lake.storage import open_store
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.webhooks import lambda_handler
from hostpms_pipeline.webhooks.idempotency import create_dynamodb_table
from hostpms_pipeline.webhooks.verification import MAX_BODY_BYTES
from hostpms_pipeline_tests.fixtures.s3 import TEST_REGION
from hostpms_pipeline_tests.test_webhook_receiver import (
    OLD_SECRET,
    PROPERTY,
    SECRET,
    event_body,
    webhook_path,
)

CONTEXT = SimpleNamespace(function_name="hostpms-webhooks", aws_request_id="req-1")
ROUTE = "/webhooks/hostpms/{property_id}/{event}"


def rest_v1_event(
    method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> dict[str, Any]:
    """What API Gateway (REST API, stage ``prod``) passes to a proxy integration."""
    return {
        "resource": ROUTE,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": ROUTE,
            "httpMethod": method,
            "path": f"/prod{path}",
            "stage": "prod",
            "requestId": str(uuid.uuid4()),
            "accountId": "123456789012",
            "apiId": "abc123",
            "identity": {"sourceIp": "203.0.113.10", "userAgent": "HostPMS-Webhooks/1.0"},
            "protocol": "HTTP/1.1",
            "requestTimeEpoch": int(time.time() * 1000),
        },
        "body": body.decode() if body else None,
        "isBase64Encoded": False,
    }


def http_v2_event(
    method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> dict[str, Any]:
    """What API Gateway (HTTP API, payload 2.0) passes; bodies come base64-encoded."""
    return {
        "version": "2.0",
        "routeKey": f"{method} {ROUTE}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "hooks.example.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.10",
                "userAgent": "HostPMS-Webhooks/1.0",
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": f"{method} {ROUTE}",
            "stage": "$default",
            "time": "24/Nov/2026:13:05:07 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


def signed_now(body: bytes, *secrets: str) -> dict[str, str]:
    stamp = str(int(time.time()))
    return {
        "content-type": "application/json",
        contract.HEADER_TIMESTAMP: stamp,
        contract.HEADER_SIGNATURE: ",".join(
            contract.sign_webhook(secret, stamp, body) for secret in secrets or (SECRET,)
        ),
    }


@pytest.fixture
def webhook_secret(s3_bucket_url: str) -> Iterator[None]:
    """The property's secrets while rotating; removed after the test (moto's server lives on)."""
    secrets: BaseClient = boto3.client("secretsmanager", region_name=TEST_REGION)
    name = contract.WEBHOOK_SECRET_NAME.format(property_id=PROPERTY)
    value = orjson.dumps({"secrets": [OLD_SECRET, SECRET]}).decode()
    try:
        secrets.create_secret(Name=name, SecretString=value)
    except secrets.exceptions.ResourceExistsException:  # another module's test left it
        secrets.put_secret_value(SecretId=name, SecretString=value)
    yield
    secrets.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)


@pytest.fixture
def deployment(
    s3_bucket_url: str, webhook_secret: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """Environment of the Lambda: S3 bucket, DynamoDB table, the property's secret."""
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
    return environment


@pytest.fixture
def handler(deployment: dict[str, str]) -> Iterator[Mangum]:
    """The module's own handler, built from the environment on first call (as on a cold start)."""
    settings_module.get_settings.cache_clear()
    lambda_handler._default_handler.cache_clear()
    yield lambda_handler.handler
    settings_module.get_settings.cache_clear()
    lambda_handler._default_handler.cache_clear()


def landed_keys(deployment: dict[str, str]) -> list[str]:
    return [info.key for info in open_store(deployment["HOSTPMS_RAW_URL"]).list("hostpms/")]


@pytest.mark.parametrize("payload", [rest_v1_event, http_v2_event], ids=["rest-v1", "http-v2"])
def test_lambda_lands_an_event_once(
    payload: Any, handler: Mangum, deployment: dict[str, str]
) -> None:
    body = event_body()
    accepted = handler(payload("POST", webhook_path(), signed_now(body), body), CONTEXT)
    again = handler(payload("POST", webhook_path(), signed_now(body, OLD_SECRET), body), CONTEXT)
    assert accepted["statusCode"] == 200
    assert orjson.loads(accepted["body"]) == {
        "status": "accepted",
        "event_id": "evt_8f14e45fceea167a",
    }
    assert (again["statusCode"], orjson.loads(again["body"])["status"]) == (200, "duplicate")
    [key] = landed_keys(deployment)
    assert key.startswith(f"hostpms/{PROPERTY}/webhooks/reservation.updated/")
    assert key.endswith("_evt_8f14e45fceea167a.json")
    envelope = orjson.loads(open_store(deployment["HOSTPMS_RAW_URL"]).get(key))
    assert (envelope["kind"], envelope["collection"], envelope["data"][0]["reservation_id"]) == (
        "webhook",
        "reservations",
        "RSV-0001",
    )


@pytest.mark.parametrize("payload", [rest_v1_event, http_v2_event], ids=["rest-v1", "http-v2"])
def test_lambda_refusals_keep_their_status(
    payload: Any, handler: Mangum, deployment: dict[str, str]
) -> None:
    body = event_body()
    forged = handler(
        payload("POST", webhook_path(), signed_now(body, "whsec_forged"), body), CONTEXT
    )
    big = b" " * (MAX_BODY_BYTES + 1)
    oversized = handler(payload("POST", webhook_path(), signed_now(big), big), CONTEXT)
    other = event_body(property_id="ES-MAD-001")
    unknown = handler(
        payload("POST", webhook_path("ES-MAD-001"), signed_now(other), other), CONTEXT
    )  # no secret in Secrets Manager for it
    assert (forged["statusCode"], orjson.loads(forged["body"])["error"]) == (401, "bad_signature")
    assert (oversized["statusCode"], orjson.loads(oversized["body"])["error"]) == (
        413,
        "payload_too_large",
    )
    assert (unknown["statusCode"], orjson.loads(unknown["body"])["error"]) == (
        404,
        "unknown_property",
    )
    assert landed_keys(deployment) == []


def test_lambda_health(handler: Mangum) -> None:
    for payload in (rest_v1_event, http_v2_event):
        response = handler(payload("GET", "/health", {}), CONTEXT)
        assert (response["statusCode"], orjson.loads(response["body"])) == (200, {"status": "ok"})


def test_lambda_built_from_explicit_settings(deployment: dict[str, str]) -> None:
    settings = Settings(use_secrets_manager=True, raw_url=deployment["HOSTPMS_RAW_URL"])
    handler = lambda_handler.make_handler(lambda_handler.build_app(settings))
    body = event_body("evt_0000000000000009")
    response = handler(http_v2_event("POST", webhook_path(), signed_now(body), body), CONTEXT)
    assert response["statusCode"] == 200
    assert len(landed_keys(deployment)) == 1

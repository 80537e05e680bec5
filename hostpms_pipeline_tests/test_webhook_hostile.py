"""Hostile deliveries that once ended in a 500: each now gets its 4xx, and no claim stays held."""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.webhooks.acceptance import Delivery, WebhookAcceptor
from hostpms_pipeline.webhooks.receiver import create_app
from hostpms_pipeline.webhooks.verification import MAX_JSON_DEPTH
from hostpms_pipeline_tests.test_webhook_receiver import (
    PROPERTY,
    acceptor,  # noqa: F401 - fixtures shared with the receiver's tests
    claim_row,
    event_body,
    idempotency,  # noqa: F401
    landed,
    raw_store,  # noqa: F401
    served,
    signed_headers,
    webhook_path,
)

EVENT_ID = "evt_8f14e45fceea167a"


def nested_body(depth: int) -> bytes:
    """A valid event whose ``data`` nests ``depth`` levels (orjson cannot write it: json can)."""
    value: dict = {"leaf": 1}
    for _ in range(depth):
        value = {"n": value}
    document = json.loads(event_body())
    document["data"]["extra"] = value
    return json.dumps(document).encode()


def test_event_nesting_deeper_than_the_limit_is_refused_400_without_a_held_claim(
    acceptor: WebhookAcceptor,  # noqa: F811
    raw_store: LocalObjectStore,  # noqa: F811
    pg_conn: psycopg.Connection,
) -> None:
    body = nested_body(300)
    with served(create_app(acceptor)) as client:
        first = client.post(webhook_path(), content=body, headers=signed_headers(body))
        again = client.post(webhook_path(), content=body, headers=signed_headers(body))
        ok_body = nested_body(MAX_JSON_DEPTH - 5)
        ok = client.post(webhook_path(), content=ok_body, headers=signed_headers(ok_body))
    assert (first.status_code, first.json()["error"]) == (400, "invalid_event")
    assert (again.status_code, again.json()["error"]) == (400, "invalid_event")  # never 409
    assert claim_row(pg_conn, EVENT_ID) is not None and ok.status_code == 200
    assert len(landed(raw_store)) == 1


class FailingOnceStore(LocalObjectStore):
    """A real folder store whose first put fails with an error nobody planned for."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.failures = 1

    def put(self, key: str, data: bytes) -> str:
        if self.failures:
            self.failures -= 1
            raise ValueError("unexpected")
        return super().put(key, data)


def test_any_failure_after_the_claim_releases_it(
    acceptor: WebhookAcceptor,  # noqa: F811
    tmp_path: Path,
    pg_conn: psycopg.Connection,
) -> None:
    store = FailingOnceStore(tmp_path / "failing")
    failing = replace(acceptor, store=store)
    body = event_body()
    headers = signed_headers(body)
    delivery = Delivery(
        PROPERTY,
        "reservation.updated",
        headers[contract.HEADER_TIMESTAMP],
        headers[contract.HEADER_SIGNATURE],
        body,
    )
    with pytest.raises(ValueError):
        failing.accept(delivery)
    assert claim_row(pg_conn, EVENT_ID) is None  # released: the retry is not a 409
    assert failing.accept(delivery).outcome == "accepted"
    assert len(landed(store)) == 1


def test_signed_timestamp_of_thousands_of_digits_is_401_invalid_timestamp(
    acceptor: WebhookAcceptor,  # noqa: F811
    raw_store: LocalObjectStore,  # noqa: F811
) -> None:
    body = event_body()
    with served(create_app(acceptor)) as client:
        response = client.post(
            webhook_path(), content=body, headers=signed_headers(body, timestamp="9" * 5000)
        )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_timestamp")
    assert landed(raw_store) == []


def test_client_hanging_up_mid_body_is_counted_as_a_disconnect_without_a_traceback(
    acceptor: WebhookAcceptor,  # noqa: F811
    raw_store: LocalObjectStore,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = event_body()
    head = (
        f"POST {webhook_path()} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Length: {len(body)}\r\nContent-Type: application/json\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in signed_headers(body).items())
        + "\r\n"
    ).encode()
    with caplog.at_level(logging.INFO), served(create_app(acceptor)) as client:
        port = httpx.URL(str(client.base_url)).port
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.sendall(head + body[: len(body) // 2])
                time.sleep(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            metrics = client.get("/metrics").text
            if 'hostpms_webhook_requests_total{outcome="client_disconnected"} 3.0' in metrics:
                break
            time.sleep(0.05)
    assert 'hostpms_webhook_requests_total{outcome="client_disconnected"} 3.0' in metrics
    assert 'hostpms_webhook_requests_total{outcome="internal_error"} 0.0' in metrics
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert landed(raw_store) == []

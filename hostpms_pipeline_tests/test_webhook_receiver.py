"""The webhook receiver: every refusal with its status, landing once, durability, logs, metrics.

Real PostgreSQL (idempotency), a real folder as the raw store, the ASGI app in-process
through Starlette's httpx.Client, and the simulator delivering over loopback HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from pydantic import SecretStr
from starlette.types import ASGIApp

from hostpms_pipeline.engine import reading
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.credentials import MissingSecret
from hostpms_pipeline.lake.storage import LocalObjectStore, ObjectStore
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.simulator import HostPMSSimulator, SimulatorConfig, run_in_background
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.warehouse import database
from hostpms_pipeline.webhooks.acceptance import WebhookAcceptor
from hostpms_pipeline.webhooks.idempotency import (
    EventRef,
    PostgresIdempotencyStore,
)
from hostpms_pipeline.webhooks.landing import land_event
from hostpms_pipeline.webhooks.receiver import create_app
from hostpms_pipeline.webhooks.server import build_app
from hostpms_pipeline.webhooks.verification import MAX_BODY_BYTES, VerifiedEvent
from hostpms_pipeline_tests.fixtures.simulator import subscribe_webhooks

PROPERTY = "PT-LIS-001"
SECRET = "whsec_current-secret-for-tests"
OLD_SECRET = "whsec_previous-secret-for-tests"
NOW = datetime(2026, 11, 24, 13, 5, 7, 123456, tzinfo=UTC)
GUEST_PII = ("Maria Silva", "maria.silva@example.pt", "+351912345678", "123456789")
KEY_PATTERN = re.compile(
    r"hostpms/PT-LIS-001/webhooks/reservation\.updated/20261124T130507123456Z_evt_[0-9a-f]+\.json"
)


# --- helpers shared with the other webhook tests --------------------------------------------


def reservation(
    reservation_id: str = "RSV-0001",
    updated_at: str = "2026-11-24T13:00:00Z",
    status: str = "confirmada",
) -> dict[str, Any]:
    name, email, phone, nif = GUEST_PII
    return {
        "reservation_id": reservation_id,
        "property_id": PROPERTY,
        "guest": {
            "guest_id": "GST-1",
            "name": name,
            "email": email,
            "phone": phone,
            "country": "PT",
            "nif": nif,
        },
        "room": {"type": "duplo", "number": "204", "floor": 2},
        "dates": {
            "check_in": "2026-12-10",
            "check_out": "2026-12-15",
            "created_at": "2026-11-21T09:30:00Z",
        },
        "pricing": {
            "total": 450.0,
            "currency": "EUR",
            "rate_plan": "flexivel",
            "iva": 103.5,
            "taxa_turistica": 20.0,
        },
        "status": status,
        "channel": "booking.com",
        "payment_method": "cartao",
        "updated_at": updated_at,
    }


def event_body(
    event_id: str = "evt_8f14e45fceea167a",
    event_type: str = "reservation.updated",
    property_id: str = PROPERTY,
    data: dict[str, Any] | None = None,
) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "type": event_type,
            "property_id": property_id,
            "created_at": "2026-11-24T13:00:01Z",
            "data": data if data is not None else reservation(),
        }
    )


def signed_headers(
    body: bytes, *secrets: str, timestamp: str | int | None = None, now: datetime = NOW
) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(now.timestamp()))
    signatures = ",".join(
        contract.sign_webhook(secret, stamp, body) for secret in secrets or (SECRET,)
    )
    return {
        "Content-Type": "application/json",
        contract.HEADER_TIMESTAMP: stamp,
        contract.HEADER_SIGNATURE: signatures,
    }


def webhook_path(property_id: str = PROPERTY, event_type: str = "reservation.updated") -> str:
    return f"/webhooks/hostpms/{property_id}/{event_type}"


def secrets_table(table: dict[str, list[str]]) -> Callable[[str], list[str]]:
    def secrets_of(property_id: str) -> list[str]:
        if property_id not in table:
            raise MissingSecret(property_id)
        return table[property_id]

    return secrets_of


def landed(store: ObjectStore) -> list[str]:
    return [info.key for info in store.list("hostpms/")]


@contextmanager
def served(app: ASGIApp) -> Iterator[httpx.Client]:
    """``app`` served by uvicorn on loopback, and an HTTP client on it."""
    with (
        serve_app_in_background(app) as port,
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        yield client


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def raw_store(tmp_path: Path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "raw")


@pytest.fixture
def idempotency(pg_url: str, pg_schema: str) -> PostgresIdempotencyStore:
    return PostgresIdempotencyStore(lambda: database.connect(pg_url, pg_schema))


@pytest.fixture
def acceptor(raw_store: LocalObjectStore, idempotency: PostgresIdempotencyStore) -> WebhookAcceptor:
    return WebhookAcceptor(
        secrets=secrets_table({PROPERTY: [SECRET], "PT-POR-002": [SECRET]}),
        store=raw_store,
        idempotency=idempotency,
        clock=lambda: NOW,
    )


@pytest.fixture
def client(acceptor: WebhookAcceptor) -> Iterator[httpx.Client]:
    with served(create_app(acceptor)) as test_client:
        yield test_client


def claim_row(pg_conn: psycopg.Connection, event_id: str) -> tuple[Any, ...] | None:
    return pg_conn.execute(
        "SELECT state, location FROM webhook_events WHERE idempotency_key = %s",
        (EventRef(PROPERTY, event_id, "reservation.updated").idempotency_key,),
    ).fetchone()


# --- accepted, duplicate, out of order --------------------------------------------------------


def test_accepted_event_lands_once_with_its_envelope_readable_by_the_transform(
    client: httpx.Client, raw_store: LocalObjectStore, pg_conn: psycopg.Connection
) -> None:
    body = event_body()
    response = client.post(webhook_path(), content=body, headers=signed_headers(body))
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "event_id": "evt_8f14e45fceea167a"}
    [key] = landed(raw_store)
    assert KEY_PATTERN.fullmatch(key)
    stored = raw_store.get(key)
    assert stored.count(b"\n") == 0
    assert orjson.loads(stored) == {
        "kind": "webhook",
        "source": "hostpms",
        "property_id": PROPERTY,
        "collection": "reservations",
        "received_at": "2026-11-24T13:05:07.123456Z",
        "event_id": "evt_8f14e45fceea167a",
        "event_type": "reservation.updated",
        "event_created_at": "2026-11-24T13:00:01Z",
        "data": [reservation()],
    }
    table = reading.read_landed(RESERVATIONS, [(raw_store.location(key), stored)]).to_pylist()
    assert [
        (r["reservation_id"], r["guest.name"], r["pricing.total"], r["page_property_id"])
        for r in table
    ] == [("RSV-0001", "Maria Silva", "450", PROPERTY)]
    assert claim_row(pg_conn, "evt_8f14e45fceea167a") == ("landed", raw_store.location(key))


def test_repeated_delivery_answers_200_and_lands_nothing_new(
    client: httpx.Client, raw_store: LocalObjectStore
) -> None:
    body = event_body()
    first = client.post(webhook_path(), content=body, headers=signed_headers(body))
    again = client.post(webhook_path(), content=body, headers=signed_headers(body))
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json() == {"status": "duplicate", "event_id": "evt_8f14e45fceea167a"}
    assert len(landed(raw_store)) == 1


def test_older_state_delivered_after_newer_lands_too(
    client: httpx.Client, raw_store: LocalObjectStore
) -> None:
    newer = event_body(
        "evt_0000000000000002",
        data=reservation(updated_at="2026-11-24T12:00:00Z", status="cancelada"),
    )
    older = event_body("evt_0000000000000001", data=reservation(updated_at="2026-11-24T11:00:00Z"))
    for body in (newer, older):
        assert (
            client.post(webhook_path(), content=body, headers=signed_headers(body)).status_code
            == 200
        )
    files = [(key, raw_store.get(key)) for key in landed(raw_store)]
    states = sorted(
        (r["updated_at"], r["status"]) for r in reading.read_landed(RESERVATIONS, files).to_pylist()
    )
    assert states == [("2026-11-24T11:00:00Z", "confirmada"), ("2026-11-24T12:00:00Z", "cancelada")]


# --- refusals -----------------------------------------------------------------------------------

STAMP = int(NOW.timestamp())
REFUSALS: dict[str, tuple[Callable[[], tuple[str, bytes, dict[str, str]]], int, str]] = {
    "unknown event in the path": (
        lambda: (
            webhook_path(event_type="reservation.deleted"),
            event_body(event_type="reservation.deleted"),
            signed_headers(event_body(event_type="reservation.deleted")),
        ),
        404,
        "unknown_event",
    ),
    "property without a secret": (
        lambda: (
            webhook_path("ES-BCN-009"),
            event_body(property_id="ES-BCN-009"),
            signed_headers(event_body(property_id="ES-BCN-009")),
        ),
        404,
        "unknown_property",
    ),
    "property id that is no identifier": (
        lambda: (webhook_path("..%2E"), event_body(), signed_headers(event_body())),
        404,
        "unknown_property",
    ),
    "no signature": (
        lambda: (webhook_path(), event_body(), {contract.HEADER_TIMESTAMP: str(STAMP)}),
        401,
        "missing_signature",
    ),
    "no timestamp": (
        lambda: (
            webhook_path(),
            event_body(),
            {contract.HEADER_SIGNATURE: contract.sign_webhook(SECRET, str(STAMP), event_body())},
        ),
        401,
        "missing_signature",
    ),
    "signed with another secret": (
        lambda: (webhook_path(), event_body(), signed_headers(event_body(), "whsec_someone-else")),
        401,
        "bad_signature",
    ),
    "body changed after signing": (
        lambda: (
            webhook_path(),
            event_body(data=reservation(status="cancelada")),
            signed_headers(event_body()),
        ),
        401,
        "bad_signature",
    ),
    "signature of another timestamp": (
        lambda: (
            webhook_path(),
            event_body(),
            {
                **signed_headers(event_body(), timestamp=STAMP - 1),
                contract.HEADER_TIMESTAMP: str(STAMP),
            },
        ),
        401,
        "bad_signature",
    ),
    "timestamp 301 s old": (
        lambda: (webhook_path(), event_body(), signed_headers(event_body(), timestamp=STAMP - 301)),
        401,
        "stale_timestamp",
    ),
    "timestamp 301 s in the future": (
        lambda: (webhook_path(), event_body(), signed_headers(event_body(), timestamp=STAMP + 301)),
        401,
        "stale_timestamp",
    ),
    "timestamp not unix seconds": (
        lambda: (
            webhook_path(),
            event_body(),
            signed_headers(event_body(), timestamp="2026-11-24T13:05:07Z"),
        ),
        401,
        "invalid_timestamp",
    ),
    "body not JSON": (
        lambda: (
            webhook_path(),
            b'{"id": "evt_1", "type": ',
            signed_headers(b'{"id": "evt_1", "type": '),
        ),
        400,
        "malformed_json",
    ),
    "body without created_at": (
        lambda: (
            webhook_path(),
            orjson.dumps(
                {
                    "id": "evt_1",
                    "type": "reservation.updated",
                    "property_id": PROPERTY,
                    "data": reservation(),
                }
            ),
            signed_headers(
                orjson.dumps(
                    {
                        "id": "evt_1",
                        "type": "reservation.updated",
                        "property_id": PROPERTY,
                        "data": reservation(),
                    }
                )
            ),
        ),
        400,
        "invalid_event",
    ),
    "event id that is no identifier": (
        lambda: (
            webhook_path(),
            event_body("../../etc/evt"),
            signed_headers(event_body("../../etc/evt")),
        ),
        400,
        "invalid_event",
    ),
    "body of another property": (
        lambda: (
            webhook_path(),
            event_body(property_id="PT-POR-002"),
            signed_headers(event_body(property_id="PT-POR-002")),
        ),
        400,
        "path_mismatch",
    ),
    "body of another event type": (
        lambda: (
            webhook_path(),
            event_body(event_type="reservation.cancelled"),
            signed_headers(event_body(event_type="reservation.cancelled")),
        ),
        400,
        "path_mismatch",
    ),
    "declared length over 1 MiB": (
        lambda: (webhook_path(), b"x" * (MAX_BODY_BYTES + 1), signed_headers(b"")),
        413,
        "payload_too_large",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_have_their_status_and_land_nothing(
    case: str, client: httpx.Client, raw_store: LocalObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    build, status, code = REFUSALS[case]
    path, body, headers = build()
    with caplog.at_level(logging.INFO):
        response = client.post(path, content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.json()["detail"]
    assert landed(raw_store) == []
    for secret_or_pii in (SECRET, *GUEST_PII):
        assert secret_or_pii not in response.text
        assert secret_or_pii not in caplog.text


def test_timestamps_exactly_at_the_tolerance_are_accepted(acceptor: WebhookAcceptor) -> None:
    on_the_second = replace(acceptor, clock=lambda: NOW.replace(microsecond=0))
    with served(create_app(on_the_second)) as client:
        for offset, event_id in ((-300, "evt_01"), (300, "evt_02")):
            body = event_body(event_id)
            response = client.post(
                webhook_path(), content=body, headers=signed_headers(body, timestamp=STAMP + offset)
            )
            assert response.status_code == 200, offset


def test_body_streamed_past_1_mib_without_a_length_is_refused(
    client: httpx.Client, raw_store: LocalObjectStore
) -> None:
    chunk = b" " * 65536

    def chunks() -> Iterator[bytes]:  # chunked transfer: no Content-Length at all
        for _ in range(MAX_BODY_BYTES // len(chunk) + 1):
            yield chunk

    response = client.post(webhook_path(), content=chunks(), headers=signed_headers(b""))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert landed(raw_store) == []


def test_body_longer_than_its_declared_length_is_refused(
    acceptor: WebhookAcceptor, raw_store: LocalObjectStore
) -> None:
    """A lying Content-Length (ASGI lets a server pass more): the stream count still refuses it."""
    chunk = b" " * 65536
    messages = [{"type": "http.request", "body": chunk, "more_body": True}] * (
        MAX_BODY_BYTES // len(chunk)
    ) + [{"type": "http.request", "body": chunk, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": webhook_path(),
        "raw_path": webhook_path().encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
        "headers": [
            (b"content-length", b"10"),
            *((k.lower().encode(), v.encode()) for k, v in signed_headers(b"").items()),
        ],
    }
    asyncio.run(create_app(acceptor)(scope, receive, send))
    assert sent[0]["status"] == 413
    assert orjson.loads(sent[1]["body"])["error"] == "payload_too_large"
    assert landed(raw_store) == []


# --- secret rotation --------------------------------------------------------------------------


@pytest.fixture
def rotating_client(acceptor: WebhookAcceptor) -> Iterator[httpx.Client]:
    rotating = replace(acceptor, secrets=secrets_table({PROPERTY: [OLD_SECRET, SECRET]}))
    with served(create_app(rotating)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda sign: sign(OLD_SECRET), id="old secret"),
        pytest.param(lambda sign: sign(SECRET), id="new secret"),
        pytest.param(lambda sign: f"{sign(OLD_SECRET)},{sign(SECRET)}", id="both"),
        pytest.param(lambda sign: f"{sign('whsec_retired')}, {sign(SECRET)}", id="one of several"),
    ],
)
def test_any_valid_secret_and_any_one_valid_signature_is_enough(
    signature: Callable[[Callable[[str], str]], str], rotating_client: httpx.Client
) -> None:
    body = event_body()
    header = signature(lambda secret: contract.sign_webhook(secret, str(STAMP), body))
    headers = {contract.HEADER_TIMESTAMP: str(STAMP), contract.HEADER_SIGNATURE: header}
    response = rotating_client.post(webhook_path(), content=body, headers=headers)
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"


def test_signatures_of_retired_secrets_only_are_refused(rotating_client: httpx.Client) -> None:
    body = event_body()
    response = rotating_client.post(
        webhook_path(), content=body, headers=signed_headers(body, "whsec_retired", "whsec_older")
    )
    assert (response.status_code, response.json()["error"]) == (401, "bad_signature")


# --- durability and the order claim → land → mark --------------------------------------------


def test_storage_failure_answers_503_marks_nothing_and_the_retry_lands(
    client: httpx.Client, raw_store: LocalObjectStore, pg_conn: psycopg.Connection
) -> None:
    blocker = raw_store.root / "hostpms"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the store needs a folder")  # every put fails
    body = event_body()
    failed = client.post(webhook_path(), content=body, headers=signed_headers(body))
    assert failed.status_code == 503
    assert failed.json()["error"] == "storage_unavailable"
    assert failed.headers["Retry-After"]
    assert claim_row(pg_conn, "evt_8f14e45fceea167a") is None

    blocker.unlink()
    retried = client.post(webhook_path(), content=body, headers=signed_headers(body))
    assert retried.status_code == 200
    assert retried.json()["status"] == "accepted"
    assert len(landed(raw_store)) == 1
    assert claim_row(pg_conn, "evt_8f14e45fceea167a")[0] == "landed"


class ObservingStore(LocalObjectStore):
    """A real folder store that runs ``during_put`` while an object is being written."""

    def __init__(self, root: Path, during_put: Callable[[], None]) -> None:
        super().__init__(root)
        self.during_put = during_put

    def put(self, key: str, data: bytes) -> str:
        self.during_put()
        return super().put(key, data)


def test_event_is_claimed_before_it_lands_and_marked_after(
    acceptor: WebhookAcceptor, tmp_path: Path, pg_conn: psycopg.Connection
) -> None:
    """A duplicate arriving while the first delivery is landing is told to retry (409)."""
    body = event_body()
    seen_during_put: list[Any] = []

    def deliver_again() -> None:
        seen_during_put.append(claim_row(pg_conn, "evt_8f14e45fceea167a"))
        with served(create_app(acceptor)) as concurrent:
            seen_during_put.append(
                concurrent.post(webhook_path(), content=body, headers=signed_headers(body))
            )

    store = ObservingStore(tmp_path / "observed", deliver_again)
    observed = replace(acceptor, store=store)
    with served(create_app(observed)) as first:
        response = first.post(webhook_path(), content=body, headers=signed_headers(body))
    row_during_put, concurrent_response = seen_during_put
    assert row_during_put == ("claimed", None)  # claimed before landing, not yet marked
    assert concurrent_response.status_code == 409
    assert concurrent_response.json()["error"] == "in_flight"
    assert concurrent_response.headers["Retry-After"]
    assert response.status_code == 200
    assert claim_row(pg_conn, "evt_8f14e45fceea167a") == (
        "landed",
        store.location(landed(store)[0]),
    )
    assert len(landed(store)) == 1


def test_crash_between_landing_and_marking_lands_a_second_copy_after_the_lease(
    acceptor: WebhookAcceptor, idempotency: PostgresIdempotencyStore, raw_store: LocalObjectStore
) -> None:
    """Accepted trade-off: the redelivery lands again; dedup absorbs the copy."""
    body = event_body()
    event = contract.WebhookEvent.model_validate_json(body)
    crashed_at = NOW - timedelta(minutes=5)
    idempotency.claim(EventRef(PROPERTY, event.id, event.type), crashed_at)
    land_event(
        raw_store, VerifiedEvent(event, orjson.loads(body)["data"]), crashed_at
    )  # then the crash
    with served(create_app(acceptor)) as client:
        response = client.post(webhook_path(), content=body, headers=signed_headers(body))
        again = client.post(webhook_path(), content=body, headers=signed_headers(body))
    assert response.json()["status"] == "accepted"
    assert again.json()["status"] == "duplicate"
    files = [(key, raw_store.get(key)) for key in landed(raw_store)]
    assert len(files) == 2
    assert {r["reservation_id"] for r in reading.read_landed(RESERVATIONS, files).to_pylist()} == {
        "RSV-0001"
    }


def test_idempotency_store_down_answers_503_and_lands_nothing(
    acceptor: WebhookAcceptor, raw_store: LocalObjectStore
) -> None:
    def unreachable() -> psycopg.Connection:
        return psycopg.connect("postgresql://nobody@127.0.0.1:9/none", connect_timeout=2)

    down = replace(acceptor, idempotency=PostgresIdempotencyStore(unreachable))
    body = event_body()
    with served(create_app(down)) as client:
        response = client.post(webhook_path(), content=body, headers=signed_headers(body))
    assert (response.status_code, response.json()["error"]) == (503, "idempotency_unavailable")
    assert landed(raw_store) == []


# --- health, metrics, logs, routing -----------------------------------------------------------


def test_health_answers_json_without_secrets(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert SECRET not in response.text


def test_metrics_count_requests_by_outcome_and_time_them(client: httpx.Client) -> None:
    body = event_body()
    client.post(webhook_path(), content=body, headers=signed_headers(body))
    client.post(webhook_path(), content=body, headers=signed_headers(body))
    client.post(webhook_path(), content=body, headers=signed_headers(body, "whsec_wrong"))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for outcome, count in (
        ("accepted", 1),
        ("duplicate", 1),
        ("bad_signature", 1),
        ("stale_timestamp", 0),
    ):
        assert f'hostpms_webhook_requests_total{{outcome="{outcome}"}} {count}.0' in text
    assert 'hostpms_webhook_request_duration_seconds_count{outcome="accepted"} 1.0' in text


def test_one_json_log_line_per_request_without_pii(
    client: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    body = event_body()
    with caplog.at_level(logging.INFO, logger="hostpms_pipeline.webhooks.access"):
        client.post(webhook_path(), content=body, headers=signed_headers(body))
        client.post(webhook_path(), content=body, headers=signed_headers(body, "whsec_wrong"))
    lines = [
        orjson.loads(r.getMessage())
        for r in caplog.records
        if r.name == "hostpms_pipeline.webhooks.access"
    ]
    assert [
        (line["outcome"], line["status"], line["property_id"], line["event_type"], line["event_id"])
        for line in lines
    ] == [
        ("accepted", 200, PROPERTY, "reservation.updated", "evt_8f14e45fceea167a"),
        ("bad_signature", 401, PROPERTY, "reservation.updated", None),
    ]
    assert all(line["latency_ms"] >= 0 for line in lines)
    for secret_or_pii in (SECRET, *GUEST_PII):
        assert secret_or_pii not in caplog.text


def test_other_paths_and_methods_answer_json_errors(client: httpx.Client) -> None:
    missing = client.post("/webhooks/other/PT-LIS-001/reservation.updated", content=b"{}")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong_method = client.get(webhook_path())
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


# --- wiring from settings ----------------------------------------------------------------------


def test_app_built_from_settings_lands_configured_properties_only(
    pg_url: str, pg_schema: str, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        database_url=SecretStr(pg_url),
        db_schema=pg_schema,
        raw_url=str(tmp_path / "raw"),
        property_ids=("PT-LIS-001",),
        webhook_secret=SecretStr(f"{OLD_SECRET},{SECRET}"),
    )
    now = datetime.now(UTC)
    with served(build_app(settings)) as client:
        body = event_body()
        accepted = client.post(webhook_path(), content=body, headers=signed_headers(body, now=now))
        other = event_body(property_id="PT-POR-002")
        unknown = client.post(
            webhook_path("PT-POR-002"), content=other, headers=signed_headers(other, now=now)
        )
    assert accepted.status_code == 200
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_property")
    assert len(landed(LocalObjectStore(tmp_path / "raw"))) == 1


# --- the simulator delivering over loopback ----------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_simulator_deliveries_land_once_each(
    simulator_config: SimulatorConfig,
    raw_store: LocalObjectStore,
    idempotency: PostgresIdempotencyStore,
) -> None:
    webhooks = replace(simulator_config.webhooks, duplicate_rate=1.0)  # every event sent twice
    config = replace(simulator_config, webhooks=webhooks)
    subscribed: dict[str, list[str]] = {}
    receiver = create_app(WebhookAcceptor(secrets_table(subscribed), raw_store, idempotency))
    events = ["reservation.updated", "guest.created"]
    with (
        run_in_background(HostPMSSimulator(config)) as running,
        serve_app_in_background(receiver) as port,
    ):
        url = f"http://127.0.0.1:{port}/webhooks/hostpms"
        subscribed[PROPERTY] = [subscribe_webhooks(running, PROPERTY, url, events)]
        emitted = {running.simulator.emit_event(PROPERTY, event_type) for event_type in events}

        def delivered() -> list[dict[str, Any]]:
            return [
                a
                for a in running.simulator.state()["webhook_attempts"]
                if a["outcome"] == "delivered"
            ]

        wait_for(lambda: len(delivered()) == 2 * len(events))
    keys = landed(raw_store)
    assert len(keys) == len(events)
    envelopes = [orjson.loads(raw_store.get(key)) for key in keys]
    assert {e["event_id"] for e in envelopes} == emitted
    assert {(e["event_type"], e["collection"]) for e in envelopes} == {
        ("reservation.updated", "reservations"),
        ("guest.created", "guests"),
    }
    assert all(key.startswith(f"hostpms/{PROPERTY}/webhooks/") for key in keys)

"""The HostPMS simulator over real loopback HTTP: OAuth, paging, limits, faults, webhooks, data."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET
from hostpms_pipeline.simulator import (
    HostPMSSimulator,
    RunningSimulator,
    SimulatorConfig,
    run_in_background,
)
from hostpms_pipeline.simulator.people import dni_or_nie_is_valid, nif_check_digit
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.simulator.vocabulary import VOCABULARY

CREDENTIALS = {
    "grant_type": "client_credentials",
    "client_id": SIMULATOR_CLIENT_ID,
    "client_secret": SIMULATOR_CLIENT_SECRET,
}
ANCHOR = datetime(2025, 6, 1, tzinfo=UTC)


def frozen(config: SimulatorConfig, **changes: Any) -> SimulatorConfig:
    """A fixed anchor and a clock standing still at it: pages do not drift between calls."""
    return replace(config, anchor=ANCHOR, clock_start=ANCHOR, clock_speed=0.0, **changes)


def authed_client(running: RunningSimulator) -> httpx.Client:
    token = httpx.post(running.base_url + contract.TOKEN_PATH, json=CREDENTIALS).json()
    return httpx.Client(
        base_url=running.base_url, headers={"Authorization": f"Bearer {token['access_token']}"}
    )


def fetch_all(
    client: httpx.Client, property_id: str, collection: str, **params: Any
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(contract.collection_path(property_id, collection), params=query)
        response.raise_for_status()
        page = response.json()
        records += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return records


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def frozen_simulator(simulator_config: SimulatorConfig) -> Iterator[RunningSimulator]:
    with run_in_background(HostPMSSimulator(frozen(simulator_config))) as running:
        yield running


@pytest.fixture
def api(frozen_simulator: RunningSimulator) -> Iterator[httpx.Client]:
    with authed_client(frozen_simulator) as client:
        yield client


# --- OAuth -------------------------------------------------------------------------------


def test_token_is_issued_for_json_and_form_credentials(running_simulator: RunningSimulator) -> None:
    url = running_simulator.base_url + contract.TOKEN_PATH
    for response in (httpx.post(url, json=CREDENTIALS), httpx.post(url, data=CREDENTIALS)):
        assert response.status_code == 200
        token = contract.TokenResponse.model_validate_json(response.content)
        assert token.token_type == "Bearer" and token.expires_in == 3600


def test_wrong_credentials_are_invalid_client(running_simulator: RunningSimulator) -> None:
    response = httpx.post(
        running_simulator.base_url + contract.TOKEN_PATH,
        json={**CREDENTIALS, "client_secret": "wrong"},
    )
    assert response.status_code == 401
    assert response.json() == {"error": contract.ERROR_INVALID_CLIENT}


def test_missing_expired_and_revoked_tokens_are_invalid_token(
    simulator_config: SimulatorConfig,
) -> None:
    config = replace(simulator_config, token_lifetime_seconds=0.3)
    with run_in_background(HostPMSSimulator(config)) as running:
        path = running.base_url + contract.collection_path("PT-LIS-001", "rooms")
        assert httpx.get(path).json() == {"error": contract.ERROR_INVALID_TOKEN}
        with authed_client(running) as client:
            assert client.get(path).status_code == 200
            time.sleep(0.4)
            expired = client.get(path)
        assert (expired.status_code, expired.json()["error"]) == (401, contract.ERROR_INVALID_TOKEN)
        with authed_client(running) as client:
            assert client.get(path).status_code == 200
            assert httpx.post(running.admin_url + "/revoke-tokens").json() == {"revoked": 1}
            assert client.get(path).status_code == 401


# --- Collections -------------------------------------------------------------------------


@pytest.mark.parametrize("collection", contract.COLLECTIONS)
def test_pages_follow_the_keyset_order_and_cover_each_record_once(
    api: httpx.Client, collection: str
) -> None:
    paged = fetch_all(api, "PT-LIS-001", collection, limit=7)
    whole = fetch_all(api, "PT-LIS-001", collection, limit=500)
    id_field = contract.RECORD_ID_FIELD[collection]  # type: ignore[index]
    order = [(contract.parse_timestamp(r["updated_at"]), r[id_field]) for r in paged]
    assert order == sorted(order)
    assert len({r[id_field] for r in paged}) == len(paged) == len(whole) > 7
    assert paged == whole


def test_updated_since_is_inclusive_and_updated_before_exclusive(api: httpx.Client) -> None:
    records = fetch_all(api, "ES-MAD-001", "reservations", limit=500)
    pivot = records[len(records) // 2]
    since = fetch_all(api, "ES-MAD-001", "reservations", updated_since=pivot["updated_at"])
    before = fetch_all(api, "ES-MAD-001", "reservations", updated_before=pivot["updated_at"])
    assert since[0]["updated_at"] == pivot["updated_at"]
    assert all(r["updated_at"] < pivot["updated_at"] for r in before)  # same format: text order
    assert len(since) + len(before) == len(records)


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"limit": 0}, 400),
        ({"limit": 501}, 400),
        ({"limit": "ten"}, 400),
        ({"cursor": "not-a-cursor"}, 400),
        ({"updated_since": "yesterday"}, 400),
    ],
)
def test_invalid_parameters_are_refused(api: httpx.Client, params: dict, status: int) -> None:
    response = api.get(contract.collection_path("PT-LIS-001", "reservations"), params=params)
    assert response.status_code == status


def test_unknown_property_is_404(api: httpx.Client) -> None:
    assert api.get(contract.collection_path("PT-XXX-999", "reservations")).status_code == 404


def test_records_are_served_as_the_clock_reaches_their_versions(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    before = fetch_all(api, "PT-LIS-001", "reservations", limit=500)
    assert max(r["updated_at"] for r in before) <= contract.format_timestamp(ANCHOR)
    frozen_simulator.simulator.advance_clock(timedelta(days=30).total_seconds())
    after = fetch_all(api, "PT-LIS-001", "reservations", limit=500)
    newer = [r for r in after if r["updated_at"] > contract.format_timestamp(ANCHOR)]
    assert newer, "30 days past the anchor bring new reservation versions"
    assert len(after) >= len(before)


# --- Rate limit ----------------------------------------------------------------------------


def test_rate_limit_per_client_and_endpoint(simulator_config: SimulatorConfig) -> None:
    config = replace(simulator_config, rate_limit=5, rate_window_seconds=3600)
    with run_in_background(HostPMSSimulator(config)) as running, authed_client(running) as client:
        path = contract.collection_path("PT-LIS-001", "reservations")
        answers = [client.get(path, params={"limit": 1}) for _ in range(6)]
        assert [r.status_code for r in answers] == [200] * 5 + [429]
        assert [r.headers[contract.HEADER_RATE_REMAINING] for r in answers[:5]] == [
            "4",
            "3",
            "2",
            "1",
            "0",
        ]
        assert all(r.headers[contract.HEADER_RATE_LIMIT] == "5" for r in answers)
        reset = int(answers[0].headers[contract.HEADER_RATE_RESET])
        assert 0 < reset - time.time() <= 3600
        assert 0 < int(answers[5].headers[contract.HEADER_RETRY_AFTER]) <= 3600
        other_endpoint = client.get(contract.collection_path("PT-LIS-001", "guests"))
        assert other_endpoint.status_code == 200
        counts = httpx.get(running.admin_url + "/state").json()["request_counts"]
        reservations = [c for c in counts if c["endpoint"] == "reservations"]
        assert sum(c["served"] for c in reservations) == 5
        assert sum(c["refused"] for c in reservations) == 1


# --- Faults ----------------------------------------------------------------------------------


def test_queued_status_faults_then_normal_answers(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    faults = frozen_simulator.simulator.faults
    faults.fail(500, count=2, collection="reservations")
    faults.fail(503, retry_after=7)
    faults.fail(429)
    reservations = contract.collection_path("PT-LIS-001", "reservations")
    assert [api.get(reservations).status_code for _ in range(2)] == [500, 500]
    unavailable = api.get(contract.collection_path("PT-LIS-001", "guests"))
    assert (unavailable.status_code, unavailable.headers[contract.HEADER_RETRY_AFTER]) == (503, "7")
    limited = api.get(reservations)
    assert limited.status_code == 429 and contract.HEADER_RETRY_AFTER not in limited.headers
    assert contract.HEADER_RATE_REMAINING in limited.headers
    assert api.get(reservations).status_code == 200


def test_faults_can_be_armed_over_http(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    armed = httpx.post(
        frozen_simulator.admin_url + "/faults",
        json={"kind": "status", "status": 429, "retry_after": 3, "collection": "payments"},
    )
    assert armed.status_code == 201
    assert (
        httpx.post(frozen_simulator.admin_url + "/faults", json={"kind": "nope"}).status_code == 400
    )
    limited = api.get(contract.collection_path("PT-LIS-001", "payments"))
    assert (limited.status_code, limited.headers[contract.HEADER_RETRY_AFTER]) == (429, "3")
    httpx.post(frozen_simulator.admin_url + "/faults", json={"kind": "malformed"})
    assert httpx.delete(frozen_simulator.admin_url + "/faults").status_code == 200
    assert api.get(contract.collection_path("PT-LIS-001", "payments")).status_code == 200


def test_dropped_connection_is_a_protocol_error(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    frozen_simulator.simulator.faults.drop_connection()
    with pytest.raises(httpx.RemoteProtocolError):
        api.get(contract.collection_path("PT-LIS-001", "rooms"))
    assert api.get(contract.collection_path("PT-LIS-001", "rooms")).status_code == 200


def test_malformed_body_comes_with_200(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    frozen_simulator.simulator.faults.malformed_body()
    response = api.get(contract.collection_path("PT-LIS-001", "rooms"))
    assert response.status_code == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(response.content)


def test_slow_response_outlasts_a_short_client_timeout(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    frozen_simulator.simulator.faults.slow(1.0)
    with pytest.raises(httpx.ReadTimeout):
        api.get(contract.collection_path("PT-LIS-001", "rooms"), timeout=0.2)


def test_records_changed_while_paging_move_to_the_end(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    unchanged = fetch_all(api, "PT-POR-002", "reservations", limit=50)
    frozen_simulator.simulator.advance_clock(60)  # so the change is later than every record
    frozen_simulator.simulator.faults.change_while_paging(after_page=1, collection="reservations")
    paged = fetch_all(api, "PT-POR-002", "reservations", limit=50)
    first_page_ids = [r["reservation_id"] for r in unchanged[:50]]
    assert len(paged) == len(unchanged) + 50
    assert sorted(r["reservation_id"] for r in paged[-50:]) == sorted(first_page_ids)
    assert paged[-1]["updated_at"] > unchanged[-1]["updated_at"]


# --- Webhooks ----------------------------------------------------------------------------------


class Receiver:
    """A webhook endpoint on loopback that fails each event's first ``failures`` deliveries
    (answering 500, or, with ``stall_seconds``, answering too late)."""

    def __init__(self, failures: int = 0, stall_seconds: float = 0.0):
        self.failures = failures
        self.stall_seconds = stall_seconds
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[Route("/hooks/{property_id}/{event}", self.handle, methods=["POST"])]
        )

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.received.append((request.url.path, dict(request.headers), body))
            seen = sum(
                orjson.loads(b)["id"] == orjson.loads(body)["id"] for _, _, b in self.received
            )
        if seen > self.failures:
            return Response(status_code=204)
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
            return Response(status_code=204)  # too late: the simulator gave up waiting
        return Response(status_code=500)

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [orjson.loads(body) for _, _, body in self.received]


def delivered(simulator: HostPMSSimulator) -> list[dict[str, Any]]:
    return [a for a in simulator.state()["webhook_attempts"] if a["outcome"] == "delivered"]


def subscribe(
    client: httpx.Client, url: str, property_id: str, events: list[str]
) -> dict[str, str]:
    response = client.post(
        contract.SUBSCRIBE_PATH, json={"property_id": property_id, "url": url, "events": events}
    )
    assert response.status_code == 201
    return response.json()


def test_webhook_is_signed_and_retried_until_accepted(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    receiver = Receiver(failures=2)
    with serve_app_in_background(receiver.app) as port:
        subscription = subscribe(
            api, f"http://127.0.0.1:{port}/hooks", "PT-LIS-001", ["reservation.updated"]
        )
        assert subscription["secret"].startswith(contract.WEBHOOK_SECRET_PREFIX)
        emitted = httpx.post(
            frozen_simulator.admin_url + "/events",
            json={"property_id": "PT-LIS-001", "type": "reservation.updated"},
        )
        assert emitted.status_code == 202
        wait_for(lambda: len(delivered(frozen_simulator.simulator)) == 1)
    path, headers, body = receiver.received[-1]
    assert path == "/hooks/PT-LIS-001/reservation.updated"
    timestamp = headers[contract.HEADER_TIMESTAMP.lower()]
    assert abs(int(timestamp) - time.time()) < contract.SIGNATURE_TOLERANCE_SECONDS
    expected = contract.sign_webhook(subscription["secret"], timestamp, body)
    assert headers[contract.HEADER_SIGNATURE.lower()] == expected
    event = contract.WebhookEvent.model_validate_json(body)
    assert event.id == emitted.json()["event_id"]
    assert (event.type, event.property_id) == ("reservation.updated", "PT-LIS-001")
    contract.Reservation.model_validate(event.data)
    outcomes = [a["outcome"] for a in frozen_simulator.simulator.state()["webhook_attempts"]]
    assert outcomes == ["retry", "retry", "delivered"]


def test_webhook_answered_too_slowly_is_redelivered(simulator_config: SimulatorConfig) -> None:
    webhooks = replace(simulator_config.webhooks, delivery_timeout_seconds=0.2)
    config = frozen(simulator_config, webhooks=webhooks)
    receiver = Receiver(failures=1, stall_seconds=0.5)
    with (
        run_in_background(HostPMSSimulator(config)) as running,
        authed_client(running) as client,
        serve_app_in_background(receiver.app) as port,
    ):
        subscribe(client, f"http://127.0.0.1:{port}/hooks", "PT-LIS-001", ["guest.created"])
        running.simulator.emit_event("PT-LIS-001", "guest.created", "GST-00001")
        wait_for(lambda: len(delivered(running.simulator)) == 1)
        attempts = running.simulator.state()["webhook_attempts"]
    assert [(a["status"], a["outcome"]) for a in attempts] == [(None, "retry"), (204, "delivered")]
    assert [b["data"]["guest_id"] for b in receiver.bodies()] == ["GST-00001", "GST-00001"]


def test_duplicates_carry_the_same_event_id(simulator_config: SimulatorConfig) -> None:
    webhooks = replace(simulator_config.webhooks, duplicate_rate=1.0)
    config = frozen(simulator_config, webhooks=webhooks)
    receiver = Receiver()
    with (
        run_in_background(HostPMSSimulator(config)) as running,
        authed_client(running) as client,
        serve_app_in_background(receiver.app) as port,
    ):
        subscribe(client, f"http://127.0.0.1:{port}/hooks", "ES-MAD-001", ["payment.received"])
        event_id = running.simulator.emit_event("ES-MAD-001", "payment.received")
        wait_for(lambda: len(receiver.received) == 2)
    assert [b["id"] for b in receiver.bodies()] == [event_id, event_id]


def test_webhooks_follow_the_clock_and_stop_after_unsubscribe(
    frozen_simulator: RunningSimulator, api: httpx.Client
) -> None:
    simulator = frozen_simulator.simulator
    receiver = Receiver()
    events = ["reservation.created", "payment.received", "room.status_changed"]
    with serve_app_in_background(receiver.app) as port:
        subscription = subscribe(api, f"http://127.0.0.1:{port}/hooks", "ES-MAD-001", events)
        start = simulator.clock.now()
        end = simulator.advance_clock(timedelta(days=10).total_seconds())
        expected = sorted(
            (version.event, version.key, version.record["updated_at"])
            for _, version in simulator.dataset.changes_between("ES-MAD-001", start, end)
            if version.event in events
        )
        assert expected, "ten days of a hotel bring some events"
        wait_for(lambda: len(receiver.received) >= len(expected))
        received = sorted(
            (b["type"], b["data"][_id_field(b["type"])], b["data"]["updated_at"])
            for b in receiver.bodies()
        )
        assert received == expected
        unsubscribed = api.post(contract.UNSUBSCRIBE_PATH, json=subscription)
        assert unsubscribed.status_code == 200
        simulator.advance_clock(timedelta(days=10).total_seconds())
        assert simulator.webhooks.collect_changes() == 0
        assert simulator.webhooks.pending() == 0
        assert len(receiver.received) == len(expected)
    missing = api.post(contract.UNSUBSCRIBE_PATH, json={"subscription_id": "sub_unknown"})
    assert missing.status_code == 404


def _id_field(event_type: str) -> str:
    return contract.RECORD_ID_FIELD[contract.EVENT_COLLECTION[event_type]]


def test_subscribe_refuses_unknown_events(api: httpx.Client) -> None:
    response = api.post(
        contract.SUBSCRIBE_PATH,
        json={"property_id": "PT-LIS-001", "url": "http://x", "events": ["nope"]},
    )
    assert response.status_code == 400


# --- Data -------------------------------------------------------------------------------------


def test_same_config_serves_identical_data(simulator_config: SimulatorConfig) -> None:
    def snapshot(config: SimulatorConfig) -> list[list[dict[str, Any]]]:
        with (
            run_in_background(HostPMSSimulator(config)) as running,
            authed_client(running) as client,
        ):
            return [
                fetch_all(client, pid, c, limit=500)
                for pid in config.property_ids
                for c in contract.COLLECTIONS
            ]

    config = frozen(simulator_config)
    assert snapshot(config) == snapshot(config)
    assert snapshot(config) != snapshot(replace(config, seed=config.seed + 1))


def test_tax_ids_carry_valid_check_digits(api: httpx.Client) -> None:
    assert nif_check_digit("12345678") == "9"  # the contract's sample NIF 123456789
    guests = [
        g for pid in ("PT-LIS-001", "ES-MAD-001") for g in fetch_all(api, pid, "guests", limit=500)
    ]
    portuguese = [g["nif"] for g in guests if g["country"] == "PT"]
    spanish = [g["nif"] for g in guests if g["nif"] and g["country"] != "PT"]
    assert portuguese and spanish
    assert all(len(nif) == 9 and nif[-1] == nif_check_digit(nif[:8]) for nif in portuguese)
    assert all(dni_or_nie_is_valid(nif) for nif in spanish)


@pytest.mark.parametrize(
    ("property_id", "country", "iva_rate"), [("PT-LIS-001", "PT", 0.06), ("ES-MAD-001", "ES", 0.10)]
)
def test_reservations_are_consistent_and_in_the_local_language(
    api: httpx.Client, property_id: str, country: str, iva_rate: float
) -> None:
    words = VOCABULARY[country]
    reservations = fetch_all(api, property_id, "reservations", limit=500)
    rooms = {r["number"]: r for r in fetch_all(api, property_id, "rooms", limit=500)}
    payments = fetch_all(api, property_id, "payments", limit=500)
    for reservation in reservations:
        contract.Reservation.model_validate(reservation)
        pricing = reservation["pricing"]
        assert pricing["iva"] == pytest.approx(
            pricing["total"] * iva_rate / (1 + iva_rate), abs=0.01
        )
        assert words.tourist_tax_field in pricing
        assert reservation["status"] in words.reservation_status.values()
        assert reservation["channel"] in words.channel.values()
        assert reservation["pricing"]["rate_plan"] in words.rate_plan.values()
        assert rooms[reservation["room"]["number"]]["type"] == reservation["room"]["type"]
        assert reservation["dates"]["check_in"] < reservation["dates"]["check_out"]
    statuses = {r["status"] for r in reservations}
    assert {words.reservation_status[s] for s in ("cancelled", "checked_out")} <= statuses
    reservation_ids = {r["reservation_id"] for r in reservations}
    assert {p["reservation_id"] for p in payments} <= reservation_ids
    assert {p["method"] for p in payments} <= set(words.payment_method.values())
    summer = sum(r["dates"]["check_in"][5:7] in ("07", "08") for r in reservations)
    winter = sum(r["dates"]["check_in"][5:7] in ("01", "02") for r in reservations)
    assert summer > winter


def test_config_refuses_countries_without_a_vocabulary() -> None:
    with pytest.raises(ValueError, match="Portuguese and Spanish"):
        SimulatorConfig(property_ids=("FR-PAR-001",))


def test_anomalies_are_injected_when_asked(simulator_config: SimulatorConfig) -> None:
    config = frozen(simulator_config, anomaly_rate=1.0)
    with run_in_background(HostPMSSimulator(config)) as running, authed_client(running) as client:
        reservations = fetch_all(client, "PT-LIS-001", "reservations", limit=500)
    assert any("reservation_id" not in r for r in reservations)
    assert any(r["pricing"]["total"] == "abc" for r in reservations)
    assert any(r["dates"]["check_out"] < r["dates"]["check_in"] for r in reservations)
    words = VOCABULARY["PT"]
    assert any(r["status"] not in words.reservation_status.values() for r in reservations)

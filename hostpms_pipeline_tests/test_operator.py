"""``hostpms connect``, ``status`` and ``disconnect`` against the simulator, as an
administrator runs them (subprocesses), with a receiver running in this process."""

from __future__ import annotations

import json
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import psycopg
import pytest
from dagster import DagsterInstance
from psycopg import sql
from pydantic import SecretStr

from hostpms_pipeline.defs.partitions import PROPERTIES_PARTITIONS_NAME
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET, Settings
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.webhooks.server import build_app
from hostpms_pipeline_tests.fixtures.cli import run_hostpms

CONFIGURED = "PT-LIS-001"  # in HOSTPMS_PROPERTY_IDS
CONNECTED = "PT-POR-002"  # known to the simulator, connected with `hostpms connect`


@pytest.fixture
def env(cli_env) -> dict[str, str]:
    return {**cli_env, "HOSTPMS_PROPERTY_IDS": CONFIGURED}


@pytest.fixture
def receiver(env, tmp_path):
    """The webhook receiver, with the CLI's settings, served over loopback: its URL."""
    settings = Settings(
        home=Path(env["HOSTPMS_HOME"]),
        api_base_url=env["HOSTPMS_API_BASE_URL"],
        database_url=SecretStr(env["HOSTPMS_DATABASE_URL"]),
        db_schema=env["HOSTPMS_DB_SCHEMA"],
        property_ids=(CONFIGURED,),
    )
    with serve_app_in_background(build_app(settings)) as port:
        yield f"http://127.0.0.1:{port}/webhooks/hostpms"


def connect(env, *extra: str, secret: str = SIMULATOR_CLIENT_SECRET):
    args = ["connect", "--property-id", CONNECTED, "--client-id", SIMULATOR_CLIENT_ID]
    return run_hostpms(*args, "--client-secret", secret, *extra, env=env, timeout=400)[0]


def query(env, text: str, *params) -> list[tuple]:
    with psycopg.connect(env["HOSTPMS_DATABASE_URL"]) as conn:
        conn.execute(
            sql.SQL("SET search_path TO {}").format(sql.Identifier(env["HOSTPMS_DB_SCHEMA"]))
        )
        return conn.execute(text, params).fetchall()


def bookings_of(env, property_id: str) -> int:
    return query(env, "SELECT count(*) FROM bookings WHERE hotel_id = %s", property_id)[0][0]


def secrets_file(env) -> Path:
    return Path(env["HOSTPMS_HOME"]) / "secrets.json"


def subscriptions(running_simulator) -> list[dict]:
    return running_simulator.simulator.webhooks.subscriptions()


def dagster_properties(env) -> list[str]:
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        return instance.get_dynamic_partitions(PROPERTIES_PARTITIONS_NAME)


def signed_delivery(url: str, secret: str, record: dict, event_type="reservation.updated"):
    body = orjson.dumps(
        {
            "id": f"evt_{time.time_ns():x}",
            "type": event_type,
            "property_id": CONNECTED,
            "created_at": contract.format_timestamp(datetime.now(UTC)),
            "data": record,
        }
    )
    timestamp = str(int(time.time()))
    headers = {
        contract.HEADER_TIMESTAMP: timestamp,
        contract.HEADER_SIGNATURE: contract.sign_webhook(secret, timestamp, body),
        "Content-Type": "application/json",
    }
    return httpx.post(f"{url}/{CONNECTED}/{event_type}", content=body, headers=headers)


def test_connect_stores_subscribes_registers_and_loads_history(env, running_simulator, receiver):
    done = connect(env, "--webhook-url", receiver)
    assert done.returncode == 0, done.stderr
    assert SIMULATOR_CLIENT_SECRET not in done.stdout + done.stderr
    # Credentials and the subscription's secret, in a file only its owner can read.
    path = secrets_file(env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())[CONNECTED]
    assert stored["client_id"] == SIMULATOR_CLIENT_ID
    (subscription,) = subscriptions(running_simulator)
    assert subscription["property_id"] == CONNECTED and subscription["url"] == receiver
    assert sorted(subscription["events"]) == sorted(contract.WEBHOOK_EVENTS)
    assert stored["webhook_secret"].startswith(contract.WEBHOOK_SECRET_PREFIX)
    # Registered (table and Dagster's property dimension) and its history loaded.
    assert query(
        env, "SELECT subscription_state FROM properties WHERE property_id = %s", CONNECTED
    ) == [("active",)]
    assert CONNECTED in dagster_properties(env)
    assert bookings_of(env, CONNECTED) > 0

    # A second run changes nothing: same subscription, same secret, same rows.
    rows = bookings_of(env, CONNECTED)
    again = connect(env, "--webhook-url", receiver)
    assert again.returncode == 0, again.stderr
    assert "already subscribed" in again.stdout
    assert subscriptions(running_simulator) == [subscription]
    assert json.loads(path.read_text())[CONNECTED] == stored
    assert bookings_of(env, CONNECTED) == rows

    # The receiver takes the property's webhooks, signed with the stored secret, with no restart.
    record = (
        running_simulator.simulator.page(CONNECTED, "reservations", _first_page())
        .versions[0]
        .record
    )
    accepted = signed_delivery(receiver, stored["webhook_secret"], record)
    assert accepted.status_code == 200, accepted.text


def _first_page():
    from hostpms_pipeline.simulator.store import PageRequest

    return PageRequest(updated_since=None, updated_before=None, limit=1, after=None)


def test_connect_with_a_wrong_secret_says_invalid_client_and_stores_nothing(
    env, running_simulator, receiver
):
    done = connect(env, "--webhook-url", receiver, secret="not-the-secret")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "invalid_client" in line and "not-the-secret" not in line
    assert not secrets_file(env).exists()
    assert subscriptions(running_simulator) == []
    assert query(env, "SELECT count(*) FROM properties") == [(0,)]
    assert running_simulator.simulator.property_requests[CONNECTED] == 0


def test_status_as_table_and_json(env, running_simulator, receiver):
    assert connect(env, "--webhook-url", receiver).returncode == 0
    secret = json.loads(secrets_file(env).read_text())[CONNECTED]["webhook_secret"]
    record = (
        running_simulator.simulator.page(CONNECTED, "reservations", _first_page())
        .versions[0]
        .record
    )
    assert signed_delivery(receiver, secret, record).status_code == 200
    assert signed_delivery(receiver, "whsec_wrong", record).status_code == 401
    deadline = time.monotonic() + 30  # the receiver writes its counts every few seconds
    while time.monotonic() < deadline and len(query(env, "SELECT * FROM webhook_outcomes")) < 2:
        time.sleep(0.2)
    table, _ = run_hostpms("status", env=env)
    assert table.returncode == 0, table.stderr
    assert CONFIGURED in table.stdout and CONNECTED in table.stdout
    assert "last sync" in table.stdout
    as_json, _ = run_hostpms("status", "--json", env=env)
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    by_id = {p["property_id"]: p for p in document["properties"]}
    assert set(by_id) == {CONFIGURED, CONNECTED}
    connected = by_id[CONNECTED]
    assert connected["state"] == "connected" and connected["sources"] == ["connect"]
    assert connected["last_sync_at"] is not None and connected["lag_seconds"] >= 0
    assert connected["records_24h"]["bookings"] == bookings_of(env, CONNECTED)
    assert connected["consecutive_failures"] == 0
    assert connected["subscription"]["state"] == "active"
    assert connected["webhooks_24h"] == {"accepted": 1, "bad_signature": 1}
    assert set(connected["rejects"]) == set(contract.COLLECTIONS)
    configured = by_id[CONFIGURED]
    assert configured["last_sync_at"] is None and "never synced" in configured["problems"]


def test_disconnect_unsubscribes_forgets_secrets_and_stops_syncing(
    env, running_simulator, receiver
):
    assert connect(env, "--webhook-url", receiver).returncode == 0
    secret = json.loads(secrets_file(env).read_text())[CONNECTED]["webhook_secret"]
    record = (
        running_simulator.simulator.page(CONNECTED, "reservations", _first_page())
        .versions[0]
        .record
    )
    assert signed_delivery(receiver, secret, record).status_code == 200
    raw = Path(env["HOSTPMS_HOME"]) / "raw" / "hostpms" / CONNECTED
    landed_before = sorted(raw.rglob("*.json"))

    done, _ = run_hostpms("disconnect", "--property-id", CONNECTED, env=env)
    assert done.returncode == 0, done.stderr
    assert "webhooks unsubscribed" in done.stdout
    assert subscriptions(running_simulator) == []
    assert CONNECTED not in json.loads(secrets_file(env).read_text())
    assert CONNECTED not in dagster_properties(env)
    # The running receiver refuses a webhook signed with the removed secret; nothing lands.
    refused = signed_delivery(receiver, secret, record)
    assert 400 <= refused.status_code < 500 and refused.json()["error"] == "unknown_property"
    assert sorted(raw.rglob("*.json")) == landed_before
    # The next sync sends no request for it.
    requests_before = running_simulator.simulator.property_requests[CONNECTED]
    synced, _ = run_hostpms("sync", env=env, timeout=400)
    assert synced.returncode == 0, synced.stderr
    assert f"{CONNECTED}:" not in synced.stdout
    assert running_simulator.simulator.property_requests[CONNECTED] == requests_before
    # Its data stays (no --purge), and running it again is harmless.
    assert bookings_of(env, CONNECTED) > 0
    again, _ = run_hostpms("disconnect", "--property-id", CONNECTED, env=env)
    assert again.returncode == 0 and "already was" in again.stdout


def test_disconnect_purge_erases_the_property_everywhere_and_audits_it(env, running_simulator):
    assert connect(env, "--no-backfill").returncode == 0
    # `hostpms sync` syncs it along with HOSTPMS_PROPERTY_IDS (its first pass: its history).
    synced, _ = run_hostpms("sync", env=env, timeout=400)
    assert synced.returncode == 0, synced.stderr
    assert f"{CONFIGURED}:" in synced.stdout and f"{CONNECTED}:" in synced.stdout
    assert bookings_of(env, CONNECTED) > 0
    kept = bookings_of(env, CONFIGURED)
    done, _ = run_hostpms("disconnect", "--property-id", CONNECTED, "--purge", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    for table in ("bookings", "guests", "rooms", "payments"):
        assert query(env, f"SELECT count(*) FROM {table} WHERE hotel_id = %s", CONNECTED) == [(0,)]
    assert query(env, "SELECT count(*) FROM raw_files WHERE property_id = %s", CONNECTED) == [(0,)]
    assert not list((Path(env["HOSTPMS_HOME"]) / "raw" / "hostpms" / CONNECTED).rglob("*.json"))
    parquet = Path(env["HOSTPMS_HOME"]) / "processed" / "bookings"
    import pyarrow.dataset as ds

    hotels = ds.dataset(parquet, format="parquet", partitioning="hive").to_table(
        columns=["hotel_id"]
    )
    assert CONNECTED not in set(hotels["hotel_id"].to_pylist())
    assert bookings_of(env, CONFIGURED) == kept  # the other property is untouched
    ((action, counts),) = query(env, "SELECT action, counts FROM gdpr_audit_log")
    assert action == "property_purge" and counts["property_id"] == CONNECTED
    assert counts["bookings_deleted"] > 0

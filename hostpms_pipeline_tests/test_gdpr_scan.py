"""A demo-sized sync and the webhook receiver, three seeded guests erased, their data served
again by polling and webhooks, and then every output searched for them: nothing found.

Also, for every guest: no personal value in Parquet, under DAGSTER_HOME or in the CLI output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
from psycopg import sql

from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.simulator import HostPMSSimulator, SimulatorConfig, run_in_background
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.webhooks.acceptance import WebhookAcceptor
from hostpms_pipeline.webhooks.idempotency import PostgresIdempotencyStore
from hostpms_pipeline.webhooks.receiver import create_app
from hostpms_pipeline.webhooks.server import landing_guard
from hostpms_pipeline_tests.fixtures.simulator import FAST_WEBHOOKS, subscribe_webhooks

PROPERTIES = ("PT-LIS-001", "PT-POR-002", "ES-MAD-001")


def hostpms(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hostpms_pipeline.cli", *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def connect(pg_url: str, schema: str) -> psycopg.Connection:
    conn = psycopg.connect(pg_url, autocommit=True)
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


def seeded_guests(conn: psycopg.Connection) -> list[dict]:
    """One guest per property with bookings, whose name no other guest has."""
    people = []
    for property_id in PROPERTIES:
        row = conn.execute(
            """
            SELECT g.external_id, g.hotel_id, g.name, g.email, g.phone, g.nif, g.document_number
            FROM guests g JOIN bookings b ON b.hotel_id = g.hotel_id AND b.guest_email = g.email
            WHERE g.hotel_id = %s AND g.nif IS NOT NULL AND g.phone_valid
              AND (SELECT count(*) FROM guests o WHERE o.name = g.name) = 1
              AND (SELECT count(*) FROM bookings o WHERE o.guest_name = g.name
                   AND o.guest_email <> g.email) = 0
            GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY count(*) DESC, 1 LIMIT 1
            """,
            (property_id,),
        ).fetchone()
        keys = ("guest_id", "hotel_id", "name", "email", "phone", "nif", "document")
        person = dict(zip(keys, row, strict=True))
        person["bookings"] = [r for (r,) in conn.execute(
            "SELECT external_id FROM bookings WHERE hotel_id = %s AND guest_email = %s",
            (property_id, person["email"]))]  # fmt: skip
        people.append(person)
    return people


def needles(person: dict) -> list[str]:
    phone = person["phone"]
    national = phone[4:] if phone.startswith(("+351", "+34")) else phone  # as a hotel may type it
    national = phone[3:] if phone.startswith("+34") else national
    return [person["name"], person["email"], phone, national, person["nif"], person["document"]]


def every_file(*roots: Path) -> list[Path]:
    return [Path(d) / f for root in roots for d, _, files in os.walk(root) for f in files]


def parquet_text(root: Path) -> str:
    values = []
    for path in every_file(root):
        if path.suffix == ".parquet":
            for column in pq.read_table(path).columns:
                values += [str(v) for v in column.to_pylist() if v is not None]
    return "\n".join(values)


def postgres_text(conn: psycopg.Connection, schema: str) -> str:
    tables = [t for (t,) in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))]  # fmt: skip
    texts = []
    for table in tables:
        query = sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))
        texts += [text for (text,) in conn.execute(query)]
    return "\n".join(texts)


def test_erased_guests_are_nowhere_after_a_demo_sized_sync_and_the_receiver(
    pg_url, pg_schema, tmp_path
):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    env = {**os.environ, "HOSTPMS_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "HOSTPMS_DATABASE_URL": pg_url, "HOSTPMS_DB_SCHEMA": pg_schema,
           "HOSTPMS_SIMULATOR_ANOMALY_RATE": "0.03"}  # fmt: skip
    outputs = [hostpms("sync", env=env)]
    with connect(pg_url, pg_schema) as conn:
        people = seeded_guests(conn)
        everyone = set()  # every personal value of every guest, as PostgreSQL holds it
        for spec in ENTITIES:
            for column in spec.personal_columns:
                query = sql.SQL("SELECT DISTINCT {}::text FROM {} WHERE {} IS NOT NULL").format(
                    sql.Identifier(column), sql.Identifier(spec.table), sql.Identifier(column)
                )
                everyone |= {v for (v,) in conn.execute(query) if len(v) > 5}
    assert len(everyone) > 1000

    lisbon, porto, madrid = people
    outputs.append(hostpms("gdpr", "erase", "--email", lisbon["email"], env=env))
    outputs.append(hostpms("gdpr", "erase", "--nif", porto["nif"], env=env))
    outputs.append(hostpms("gdpr", "erase", "--guest-id", madrid["guest_id"], "--property-id",
                           madrid["hotel_id"], env=env))  # fmt: skip

    # The receiver, as `hostpms serve-webhooks` wires it (landing guard included), and
    # HostPMS sending every erased guest again: their profile and each of their bookings.
    settings = Settings(home=home, database_url=pg_url, db_schema=pg_schema)
    store_root = home / "raw"
    from hostpms_pipeline.lake.storage import open_store
    from hostpms_pipeline.warehouse import database

    config = SimulatorConfig(property_ids=PROPERTIES, reservations_per_property=200,
                             rate_limit=1000, webhooks=FAST_WEBHOOKS)  # fmt: skip
    secrets: dict[str, list[str]] = {}
    idempotency = PostgresIdempotencyStore(lambda: database.connect(pg_url, pg_schema))
    acceptor = WebhookAcceptor(lambda p: secrets[p], open_store(str(store_root)), idempotency,
                               landing_guard=landing_guard(settings))  # fmt: skip
    sent = 0
    with run_in_background(HostPMSSimulator(config)) as running, \
            serve_app_in_background(create_app(acceptor)) as port:  # fmt: skip
        url = f"http://127.0.0.1:{port}/webhooks/hostpms"
        for person in people:
            property_id = person["hotel_id"]
            secrets[property_id] = [subscribe_webhooks(
                running, property_id, url, ["guest.created", "reservation.updated"])]  # fmt: skip
            running.simulator.emit_event(property_id, "guest.created", person["guest_id"])
            for booking_id in person["bookings"]:
                running.simulator.emit_event(property_id, "reservation.updated", booking_id)
            sent += 1 + len(person["bookings"])
        deadline = time.monotonic() + 30
        while len(list((store_root / "hostpms").glob("*/webhooks/*/*.json"))) < sent:
            assert time.monotonic() < deadline, "the webhooks did not all land"
            time.sleep(0.1)
    outputs.append(hostpms("sync", env=env))  # loads the drops (and polls again)

    output_text = "\n".join(o.stdout + o.stderr for o in outputs)
    files = every_file(home, dagster_home)
    assert any(p.suffix == ".parquet" for p in files) and any("webhooks" in str(p) for p in files)
    blobs = {path: path.read_bytes() for path in files}
    with connect(pg_url, pg_schema) as conn:
        in_postgres = postgres_text(conn, pg_schema)
        for person in people:  # their bookings are still there, without them
            count = conn.execute("SELECT count(*) FROM bookings WHERE hotel_id = %s AND"
                                 " external_id = ANY(%s) AND guest_email IS NULL",
                                 (person["hotel_id"], person["bookings"])).fetchone()[0]  # fmt: skip
            assert count == len(person["bookings"]) > 0
    in_parquet = parquet_text(home / "processed")
    for person in people:
        for needle in needles(person):
            encoded = needle.encode()
            found = [str(path) for path, blob in blobs.items() if encoded in blob]
            assert not found, f"an erased guest's value is in {found[:3]}"
            assert (
                needle not in in_postgres and needle not in in_parquet and needle not in output_text
            )
    dagster_files = {p: blobs[p] for p in every_file(dagster_home)}
    for value in everyone:  # no guest's personal data in Dagster's storage, Parquet or output
        encoded = value.encode()
        assert not any(encoded in blob for blob in dagster_files.values()), (
            "personal data in DAGSTER_HOME"
        )
        assert value not in in_parquet and value not in output_text

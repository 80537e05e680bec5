"""GDPR: erasure across PostgreSQL, the raw store (local and S3 with versions) and Parquet,
erasure that sticks for later polls and webhooks, interrupted erasure, export, report, the
append-only audit log, pseudonymous Parquet, retention. Real PostgreSQL, moto S3 over HTTP,
the simulator; nothing mocked."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize
from psycopg import sql

from hostpms_pipeline.defs.jobs import hostpms_webhook_job
from hostpms_pipeline.defs.partitions import live_partition_key
from hostpms_pipeline.defs.resources import (
    BatchIOManager,
    HostPMSResource,
    ObjectStoreResource,
    PostgresResource,
)
from hostpms_pipeline.entities import ENTITIES, GUESTS, RESERVATIONS
from hostpms_pipeline.entities.schema import GUEST_KEY
from hostpms_pipeline.gdpr import audit, keys
from hostpms_pipeline.gdpr.erasure import PersonRef, erase
from hostpms_pipeline.gdpr.redaction import LandingGuard
from hostpms_pipeline.gdpr.retention import sweep
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.credentials import MissingSecret
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.raw_layout import polling_key, webhook_key
from hostpms_pipeline.lake.storage import LocalObjectStore, S3ObjectStore
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET, Settings
from hostpms_pipeline.simulator.server import serve_app_in_background
from hostpms_pipeline.webhooks.acceptance import WebhookAcceptor
from hostpms_pipeline.webhooks.idempotency import PostgresIdempotencyStore
from hostpms_pipeline.webhooks.receiver import create_app
from hostpms_pipeline_tests.fixtures.definitions import connector_graph, instance_with_properties
from hostpms_pipeline_tests.fixtures.engines import configured_engine_resource
from hostpms_pipeline_tests.fixtures.s3 import s3_client
from hostpms_pipeline_tests.fixtures.simulator import subscribe_webhooks
from hostpms_pipeline_tests.test_webhook_sensor import tick

PROPERTY = "PT-LIS-001"


def resources_for(running_simulator, pg_url, pg_schema, raw_url, processed_url):
    postgres = PostgresResource(url=pg_url, db_schema=pg_schema)
    return {
        "hostpms": HostPMSResource(
            base_url=running_simulator.base_url,
            client_id=SIMULATOR_CLIENT_ID,
            client_secret=SIMULATOR_CLIENT_SECRET,
            rate_limit_per_minute=running_simulator.simulator.config.rate_limit,
            postgres=postgres,
        ),
        "raw_store": ObjectStoreResource(url=raw_url),
        "processed_store": ObjectStoreResource(url=processed_url),
        "postgres": postgres,
        "batch_io_manager": BatchIOManager(),
        "engine": configured_engine_resource(f"{processed_url}/_spark_staging"),
    }


def sync(resources, selection=None, partition=None):
    result = materialize(
        connector_graph(),
        resources=resources,
        instance=instance_with_properties(),
        partition_key=str(partition or live_partition_key(PROPERTY)),
        selection=selection,
        raise_on_error=False,
    )
    assert result.success
    return result


def hasher():
    return keys.current_hasher()


def pick_person(conn: psycopg.Connection) -> dict:
    """A guest with bookings, all of whose identifiers (and name) are theirs alone."""
    rows = conn.execute(
        """
        SELECT g.external_id, g.name, g.email, g.phone, g.nif, g.document_number, count(*)
        FROM guests g JOIN bookings b ON b.hotel_id = g.hotel_id AND b.guest_email = g.email
        WHERE g.hotel_id = %s AND g.nif IS NOT NULL
          AND (SELECT count(*) FROM guests o WHERE o.name = g.name) = 1
        GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY count(*) DESC, 1 LIMIT 1
        """,
        (PROPERTY,),
    ).fetchone()
    assert rows is not None
    guest_id, name, email, phone, nif, document, _ = rows
    booking_ids = [r for (r,) in conn.execute(
        "SELECT external_id FROM bookings WHERE guest_email = %s ORDER BY 1", (email,))]  # fmt: skip
    return {"guest_id": guest_id, "name": name, "email": email, "phone": phone, "nif": nif,
            "document": document, "bookings": booking_ids}  # fmt: skip


def needles(person: dict) -> list[bytes]:
    phone = person["phone"]
    values = [person["name"], person["email"], phone, phone.removeprefix("+351"), person["nif"],
              person["document"]]  # fmt: skip
    return [value.encode() for value in values if value]


def raw_bodies(store) -> list[tuple[str, bytes]]:
    return [(info.key, store.get(info.key)) for info in store.list("hostpms/")]


def assert_nowhere_in_raw(store, person: dict) -> None:
    for key, body in raw_bodies(store):
        for needle in needles(person):
            assert needle not in body, f"{key} still holds the person"


def all_object_versions(url: str, endpoint: str) -> list[bytes]:
    client, bucket = s3_client(endpoint), url.removeprefix("s3://")
    bodies = []
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            body = client.get_object(
                Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"]
            )
            bodies.append(body["Body"].read())
    return bodies


def parquet_values(processed: str) -> list[str]:
    """Every value of every Parquet file under ``processed``, as text."""
    values = []
    for root, _, files in os.walk(processed):
        for name in files:
            if name.endswith(".parquet"):
                table = pq.read_table(os.path.join(root, name))
                for column in table.columns:
                    values += [str(v) for v in column.to_pylist() if v is not None]
    return values


def bookings_of(conn, booking_ids: list[str]) -> dict[str, dict]:
    cursor = conn.cursor(row_factory=psycopg.rows.dict_row)
    rows = cursor.execute(
        "SELECT * FROM bookings WHERE hotel_id = %s AND external_id = ANY(%s)",
        (PROPERTY, booking_ids),
    ).fetchall()
    return {row["external_id"]: row for row in rows}


@pytest.fixture
def versioned_s3_url(s3_bucket_url, moto_endpoint_url):
    s3_client(moto_endpoint_url).put_bucket_versioning(
        Bucket=s3_bucket_url.removeprefix("s3://"), VersioningConfiguration={"Status": "Enabled"}
    )
    return s3_bucket_url


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_erasure_across_the_three_stores_sticks_for_later_polls_and_webhooks(
    backend, running_simulator, pg_url, pg_schema, tmp_path, request
):
    raw_url = (
        str(tmp_path / "raw") if backend == "local" else request.getfixturevalue("versioned_s3_url")
    )
    processed = str(tmp_path / "processed")
    resources = resources_for(running_simulator, pg_url, pg_schema, raw_url, processed)
    sync(resources)
    store = resources["raw_store"].open()
    postgres = resources["postgres"]
    with postgres.connect() as conn:
        person = pick_person(conn)
        before = bookings_of(conn, person["bookings"])
    assert any(needles(person)[1] in body for _, body in raw_bodies(store))

    # Erase by NIF: the bookings (which hold no NIF) are found through the guest's email.
    report = erase(postgres.connect, store, processed, hasher(),
                   PersonRef.of(hasher(), "nif", person["nif"], PROPERTY), "tester")  # fmt: skip
    assert report.counts["postgres"]["guests_deleted"] == 1
    assert report.counts["postgres"]["bookings_redacted"] == len(person["bookings"])
    assert report.counts["raw"]["records_redacted"] >= 1 + len(person["bookings"])
    with postgres.connect() as conn:
        assert not conn.execute("SELECT 1 FROM guests WHERE external_id = %s AND hotel_id = %s",
                                (person["guest_id"], PROPERTY)).fetchall()  # fmt: skip
        after = bookings_of(conn, person["bookings"])
    for booking_id, row in after.items():
        assert (row["guest_name"], row["guest_email"], row["guest_phone"]) == (None, None, None)
        kept = ("status", "version", "total_amount", "check_in_date", "check_out_date", "id")
        assert {k: row[k] for k in kept} == {k: before[booking_id][k] for k in kept}
    assert_nowhere_in_raw(store, person)
    if backend == "s3":  # the originals are gone with their versions
        for body in all_object_versions(raw_url, os.environ["AWS_ENDPOINT_URL"]):
            assert needles(person)[1] not in body
        assert (
            report.counts["raw"]["object_versions_deleted"]
            >= report.counts["raw"]["files_rewritten"]
        )
    # Redacted pages are still pages the engine reads: reprocessing gives the same rows.
    with postgres.connect() as conn:
        conn.execute("UPDATE raw_files SET processed_at = NULL")
        conn.commit()
    sync(resources)
    with postgres.connect() as conn:
        again = bookings_of(conn, person["bookings"])
        assert {k: (r["version"], r["state_hash"]) for k, r in again.items()} == {
            k: (r["version"], r["state_hash"]) for k, r in after.items()}  # fmt: skip
        assert not conn.execute("SELECT 1 FROM guests WHERE external_id = %s",
                                (person["guest_id"],)).fetchall()  # fmt: skip

    # HostPMS serves the person again, newer: the guest and a check-in of their booking.
    simulator = running_simulator.simulator
    simulator.advance_clock(600)
    booking_id = person["bookings"][0]
    now = simulator.clock.now()
    touched = simulator.dataset.timeline(PROPERTY, "reservations").touch(booking_id, now)
    touched.record["status"] = "check_in"
    simulator.dataset.timeline(PROPERTY, "guests").touch(person["guest_id"], now)
    sync(resources)
    assert_nowhere_in_raw(store, person)
    with postgres.connect() as conn:
        row = bookings_of(conn, [booking_id])[booking_id]
        assert row["status"] == "checked_in" and row["version"] == after[booking_id]["version"] + 1
        assert row["guest_email"] is None and row["guest_name"] is None
        assert not conn.execute("SELECT 1 FROM guests WHERE external_id = %s",
                                (person["guest_id"],)).fetchall()  # fmt: skip
        matches = conn.execute(
            "SELECT count(*) FROM gdpr_audit_log WHERE action = 'suppression_match'"
        ).fetchone()
        assert matches[0] >= 1

    # Signed webhooks carry them again: redacted at the receiver, the booking follows.
    idempotency = PostgresIdempotencyStore(postgres.connect)
    secrets: dict[str, list[str]] = {}

    def secrets_of(property_id: str) -> list[str]:
        if property_id not in secrets:
            raise MissingSecret(property_id)
        return secrets[property_id]

    guard = LandingGuard(postgres.connect, source="webhook")
    receiver = create_app(WebhookAcceptor(secrets_of, store, idempotency, landing_guard=guard))
    with serve_app_in_background(receiver) as port:
        url = f"http://127.0.0.1:{port}/webhooks/hostpms"
        events = ["reservation.check_out", "guest.created"]
        secrets[PROPERTY] = [subscribe_webhooks(running_simulator, PROPERTY, url, events)]
        simulator.advance_clock(600)
        touched = simulator.dataset.timeline(PROPERTY, "reservations").touch(
            booking_id, simulator.clock.now()
        )
        touched.record["status"] = "check_out"
        simulator.emit_event(PROPERTY, "reservation.check_out", booking_id)
        simulator.emit_event(PROPERTY, "guest.created", person["guest_id"])
        deadline = time.monotonic() + 15
        while len(list(store.list(f"hostpms/{PROPERTY}/webhooks/"))) < 2:
            assert time.monotonic() < deadline, "the webhooks did not land"
            time.sleep(0.05)
    assert_nowhere_in_raw(store, person)
    sensor_resources = {"raw_store": resources["raw_store"], "postgres": postgres}
    (run_request,) = tick(sensor_resources, None).run_requests
    sync(resources, hostpms_webhook_job.selection, run_request.partition_key)
    with postgres.connect() as conn:
        row = bookings_of(conn, [booking_id])[booking_id]
        assert row["status"] == "checked_out" and row["guest_email"] is None
        assert not conn.execute("SELECT 1 FROM guests WHERE external_id = %s",
                                (person["guest_id"],)).fetchall()  # fmt: skip
    # Parquet: no clear personal data at all, and the person's rows carry no guest_key.
    values = set(parquet_values(processed))
    for needle in needles(person):
        assert needle.decode() not in values
    in_parquet = parquet_store.read_rows(
        processed, RESERVATIONS, ["external_id", "hotel_id", GUEST_KEY]
    )
    person_rows = [r for r in in_parquet.to_pylist()
                   if r["hotel_id"] == PROPERTY and r["external_id"] in person["bookings"]]  # fmt: skip
    assert person_rows and all(r[GUEST_KEY] is None for r in person_rows)


def test_parquet_holds_no_clear_personal_data_and_a_stable_guest_key(
    running_simulator, pg_url, pg_schema, tmp_path
):
    processed = str(tmp_path / "processed")
    resources = resources_for(
        running_simulator, pg_url, pg_schema, str(tmp_path / "raw"), processed
    )
    sync(resources)
    clear = set()
    with resources["postgres"].connect() as conn:
        for spec in ENTITIES:
            for column in spec.personal_columns:
                query = sql.SQL("SELECT DISTINCT {}::text FROM {} WHERE {} IS NOT NULL").format(
                    sql.Identifier(column), sql.Identifier(spec.table), sql.Identifier(column)
                )
                clear |= {value for (value,) in conn.execute(query)}
        emails = dict(conn.execute("SELECT id::text, guest_email FROM bookings").fetchall())
    assert len(clear) > 100
    assert not clear & set(parquet_values(processed))
    for spec in ENTITIES:
        names = set(pq.read_schema(parquet_store.dataset_summary(processed, spec).files[0]).names)
        assert not names & set(spec.personal_columns)
        assert (GUEST_KEY in names) == (spec.guest_key is not None)
    rows = parquet_store.read_rows(
        processed, RESERVATIONS, ["id", "hotel_id", GUEST_KEY]
    ).to_pylist()
    for row in rows[:50]:  # the keyed hash of the normalised email: joinable, not reversible
        assert row[GUEST_KEY] == hasher().of("email", emails[row["id"]], row["hotel_id"])


def hostpms(*args: str, env: dict) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "hostpms_pipeline.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_an_erasure_killed_halfway_finishes_when_run_again_and_export_and_report_tell(
    running_simulator, pg_url, pg_schema, tmp_path
):
    raw, processed = str(tmp_path / "raw"), str(tmp_path / "processed")
    resources = resources_for(running_simulator, pg_url, pg_schema, raw, processed)
    sync(resources)
    with resources["postgres"].connect() as conn:
        person = pick_person(conn)
    env = {**os.environ, "HOSTPMS_DATABASE_URL": pg_url, "HOSTPMS_DB_SCHEMA": pg_schema,
           "HOSTPMS_RAW_URL": raw, "HOSTPMS_PROCESSED_URL": processed,
           "HOSTPMS_HOME": str(tmp_path / "home")}  # fmt: skip

    exported = hostpms("gdpr", "export", "--email", person["email"].upper(), "--output",
                       str(tmp_path / "export.json"), env=env)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    document = orjson.loads((tmp_path / "export.json").read_bytes())
    assert oct((tmp_path / "export.json").stat().st_mode)[-3:] == "600"
    (guest,) = document["personal_data"]["guests"]
    assert guest["personal_data"]["nif"] == person["nif"]
    assert guest["record"]["external_id"] == person["guest_id"] and guest["record"]["raw_location"]
    assert sorted(r["record"]["external_id"] for r in document["personal_data"]["bookings"]) == \
        person["bookings"]  # fmt: skip
    assert {r["personal_data"]["guest_email"] for r in document["personal_data"]["bookings"]} == \
        {person["email"]}  # fmt: skip

    killed = hostpms("gdpr", "erase", "--email", person["email"],
                     env={**env, "HOSTPMS_GDPR_CRASH_AFTER": "raw_redacted"})  # fmt: skip
    assert killed.returncode == 9
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        assert conn.execute("SELECT state FROM gdpr_erasure_requests").fetchone() == (
            "raw_redacted",
        )
        assert conn.execute("SELECT count(*) FROM guests WHERE email = %s",
                            (person["email"],)).fetchone() == (1,)  # fmt: skip
    done = hostpms("gdpr", "erase", "--email", person["email"], env=env)
    assert done.returncode == 0, done.stderr
    assert "resumed from raw_redacted" in done.stdout and "bookings_redacted=" in done.stdout
    twice = hostpms("gdpr", "erase", "--email", person["email"], env=env)
    assert twice.returncode == 0, twice.stderr
    assert "bookings_redacted" not in twice.stdout  # nothing left to erase
    with psycopg.connect(pg_url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(pg_schema)))
        assert conn.execute("SELECT state FROM gdpr_erasure_requests").fetchone() == ("done",)
        assert conn.execute("SELECT count(*) FROM bookings WHERE guest_email = %s OR guest_name = %s",
                            (person["email"], person["name"])).fetchone() == (0,)  # fmt: skip
        assert conn.execute("SELECT count(*) FROM guests WHERE nif = %s",
                            (person["nif"],)).fetchone() == (0,)  # fmt: skip
        suppressed = {k for (k,) in conn.execute("SELECT kind FROM gdpr_suppression")}
        assert suppressed == {"email", "nif", "phone", "guest_id"}
        stored = " ".join(str(r) for r in conn.execute(
            "SELECT * FROM gdpr_suppression s, gdpr_erasure_requests r, gdpr_audit_log a"))  # fmt: skip
        for needle in needles(person):
            assert needle.decode() not in stored
    assert_nowhere_in_raw(LocalObjectStore(tmp_path / "raw"), person)

    report = hostpms("gdpr", "report", "--guest-id", person["guest_id"], "--property-id", PROPERTY,
                     env=env)  # fmt: skip
    assert report.returncode == 0, report.stderr
    lines = report.stdout.splitlines()
    assert (
        sum(" erasure " in line for line in lines) == 2
        and sum(" export " in line for line in lines) == 1
    )
    for output in (exported, killed, done, twice, report):  # counts and hashes, never the data
        for needle in needles(person):
            assert needle.decode() not in output.stdout + output.stderr


def test_the_audit_log_refuses_update_delete_and_truncate(pg_conn):
    audit.record(
        pg_conn, actor="tester", action="export", person_hash="ab" * 32, stores=["postgres"]
    )
    pg_conn.commit()
    for statement in ("UPDATE gdpr_audit_log SET actor = 'someone else'", "DELETE FROM gdpr_audit_log",
                      "TRUNCATE gdpr_audit_log"):  # fmt: skip
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            pg_conn.execute(statement)
        pg_conn.rollback()
    assert pg_conn.execute("SELECT actor FROM gdpr_audit_log").fetchall() == [("tester",)]


def test_retention_deletes_only_what_is_older(pg_url, pg_schema, pg_conn, tmp_path):
    store = LocalObjectStore(tmp_path / "raw")
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=7 * 365 + 10), now - timedelta(days=7 * 365 - 10)
    page = orjson.dumps({"collection": "rooms", "property_id": PROPERTY, "data": []})
    keys_by_age = {
        "old": [polling_key(PROPERTY, "rooms", old), webhook_key(PROPERTY, "guest.created", "evt_1", old)],
        "recent": [polling_key(PROPERTY, "rooms", recent), webhook_key(PROPERTY, "guest.created", "evt_2", now)],
    }  # fmt: skip
    for key in [*keys_by_age["old"], *keys_by_age["recent"]]:
        store.put(key, page)
    for index, rejected_at in enumerate((old, recent)):
        pg_conn.execute(
            "INSERT INTO rejected_records (raw_location, record_index, source, collection, reason,"
            " rejected_at) VALUES ('x', %s, 'hostpms', 'rooms', 'invalid_integer', %s)",
            (index, rejected_at),
        )
    pg_conn.commit()
    postgres = PostgresResource(url=pg_url, db_schema=pg_schema)
    counts = sweep(postgres.connect, store, timedelta(days=7 * 365 + 2), now, "tester")
    assert counts["raw_objects_deleted"] == 2 and counts["rejected_records_deleted"] == 1
    assert sorted(info.key for info in store.list("hostpms/")) == sorted(keys_by_age["recent"])
    assert pg_conn.execute("SELECT record_index FROM rejected_records").fetchall() == [(1,)]
    assert pg_conn.execute("SELECT action FROM gdpr_audit_log").fetchall() == [("retention",)]


def test_retention_deletes_every_version_on_s3(
    versioned_s3_url, moto_endpoint_url, pg_url, pg_schema
):
    from hostpms_pipeline.lake.storage import open_store

    store = open_store(versioned_s3_url)
    assert isinstance(store, S3ObjectStore)
    old = datetime.now(UTC) - timedelta(days=4000)
    key = polling_key(PROPERTY, "rooms", old)
    store.put(key, b'{"data": []}')
    store.put(key, b'{"data": [], "v": 2}')
    postgres = PostgresResource(url=pg_url, db_schema=pg_schema)
    counts = sweep(postgres.connect, store, timedelta(days=30), datetime.now(UTC), "tester")
    assert counts["raw_object_versions_deleted"] == 2
    assert all_object_versions(versioned_s3_url, moto_endpoint_url) == []


def test_the_embedded_key_is_generated_once_owner_readable_and_hashes_normalise(tmp_path):
    settings = Settings(home=tmp_path / "home")
    settings = settings.model_copy(update={"gdpr_key": None})
    key = keys.load_key(settings)
    path = tmp_path / "home" / keys.KEY_FILE_NAME
    assert oct(path.stat().st_mode)[-3:] == "600" and len(key) == 64
    assert keys.load_key(settings) == key
    hashed = keys.Hasher(key)
    assert hashed.of("email", " Joao.Silva@Example.PT ", None) == hashed.of(
        "email", "joao.silva@example.pt", None
    )
    assert hashed.of("phone", "912 345 678", "PT-LIS-001") == hashed.of(
        "phone", "+351912345678", "ES-MAD-001"
    )
    assert hashed.of("nif", "PT 123.456.789", None) == hashed.of("nif", "123456789", None)
    assert hashed.of("guest_id", "GST-1", "PT-LIS-001") != hashed.of(
        "guest_id", "GST-1", "ES-MAD-001"
    )
    assert keys.Hasher(b"another key, just as long").of("email", "a@b.pt", None) != hashed.of(
        "email", "a@b.pt", None
    )
    assert repr(hashed) == "Hasher(<key>)"


@pytest.mark.parametrize("kind", ["email", "nif", "phone", "guest_id"])
@pytest.mark.parametrize(
    "key", [b"a key of sixteen+", b"k" * 64, b"a key longer than a block " * 4]
)
def test_a_column_hashes_each_value_as_one_value_hashed_alone(kind, key):
    """The Parquet export hashes whole columns; an erasure hashes the one identifier a person
    gives. Both must agree, value for value, or an erasure would miss rows."""
    values = [" Joao.Silva@Example.PT ", "joao.silva@example.pt", None, "", "   ", "912 345 678",
              "+351912345678", "PT 123.456.789", "GST-1", "a\x1fb", "İSTANBUL@örnek.tr"]  # fmt: skip
    hotels = ["PT-LIS-001", "ES-MAD-001"]
    rows = [(value, hotel) for value in values for hotel in hotels]
    hasher = keys.Hasher(key)
    column = hasher.column(
        kind, pa.array([v for v, _ in rows], pa.string()), pa.array([h for _, h in rows])
    )
    assert column.to_pylist() == [hasher.of(kind, value, hotel) for value, hotel in rows]


def test_guests_erasure_is_declared_and_redaction_keeps_the_record_id():
    from hostpms_pipeline.gdpr.redaction import redact_record

    assert GUESTS.erasure == "delete" and RESERVATIONS.erasure == "redact"
    record = {"reservation_id": "RSV-1", "status": "confirmado", "special_requests": "late arrival",
              "guest": {"guest_id": "GST-1", "name": "Ana", "email": "a@b.pt", "phone": "+351912345678",
                        "nif": "123456789", "country": "PT"}}  # fmt: skip
    redacted = redact_record(RESERVATIONS, record)
    assert redacted == {"reservation_id": "RSV-1", "status": "confirmado", "special_requests": None,
                        "guest": {"guest_id": None, "name": None, "email": None, "phone": None,
                                  "nif": None, "country": "PT"}}  # fmt: skip
    assert record["guest"]["email"] == "a@b.pt"  # the original is untouched
    assert contract.EVENT_COLLECTION["guest.created"] == "guests"


def test_an_erasure_beside_a_load_and_a_landing_leaves_no_copy(
    running_simulator, pg_url, pg_schema, tmp_path
):
    import threading

    from hostpms_pipeline.engine import pipeline
    from hostpms_pipeline.engine.mapping import load_mapping_tables

    raw, processed = str(tmp_path / "raw"), str(tmp_path / "processed")
    resources = resources_for(running_simulator, pg_url, pg_schema, raw, processed)
    sync(resources)
    postgres, store = resources["postgres"], resources["raw_store"].open()
    with postgres.connect() as conn:
        person = pick_person(conn)
        # A load read the person's raw files before the erasure (all files pending again).
        conn.execute("UPDATE raw_files SET processed_at = NULL")
        conn.execute("DELETE FROM bookings WHERE guest_email = %s", (person["email"],))
        conn.commit()
        batch = pipeline.deduplicate(
            pipeline.map_batch(
                pipeline.read_pending(RESERVATIONS, store, conn), load_mapping_tables(None)
            )
        )
    assert person["email"] in batch.rows["guest_email"].to_pylist()
    # A landing is under way with the suppression list as it was before the erasure.
    guard = LandingGuard(postgres.connect)
    landing_open, erased = threading.Event(), threading.Event()
    late_key = polling_key(PROPERTY, "reservations", datetime.now(UTC))

    def slow_landing():
        with guard.landing() as landing:
            landing_open.set()
            time.sleep(1.0)
            assert not erased.is_set()  # the erasure waits for this landing
            records = [{"reservation_id": person["bookings"][0], "property_id": PROPERTY,
                        "guest": {"email": person["email"], "name": person["name"]},
                        "updated_at": "2020-01-01T00:00:00Z"}]  # fmt: skip
            records = landing.redact(RESERVATIONS, records, PROPERTY)
            assert records[0]["guest"]["email"] == person["email"]  # read the old list
            store.put(late_key, orjson.dumps({"collection": "reservations", "property_id": PROPERTY,
                                              "data": records}))  # fmt: skip

    landing = threading.Thread(target=slow_landing)
    landing.start()
    landing_open.wait()
    erase(postgres.connect, store, processed, hasher(),
          PersonRef.of(hasher(), "email", person["email"]), "tester")  # fmt: skip
    erased.set()
    landing.join()
    assert person["email"].encode() not in store.get(late_key)  # the erasure found the late copy
    with postgres.connect() as conn:
        loaded = pipeline.load_postgres(conn, batch)  # read before the erasure: refused
        assert loaded.deferred
        assert conn.execute("SELECT count(*) FROM bookings WHERE guest_email = %s",
                            (person["email"],)).fetchone() == (0,)  # fmt: skip
        assert conn.execute("SELECT count(*) FROM raw_files WHERE processed_at IS NULL").fetchone()[
            0
        ]
    sync(resources)  # the files, pending still, are read again: redacted now
    with postgres.connect() as conn:
        rows = bookings_of(conn, person["bookings"])
    assert set(rows) == set(person["bookings"])
    assert all(r["guest_email"] is None and r["guest_name"] is None for r in rows.values())


def test_the_dagster_erasure_job_takes_a_keyed_hash_never_a_clear_value(
    running_simulator, pg_url, pg_schema, tmp_path
):
    from hostpms_pipeline.defs.gdpr import hostpms_gdpr_erasure_job

    raw, processed = str(tmp_path / "raw"), str(tmp_path / "processed")
    resources = resources_for(running_simulator, pg_url, pg_schema, raw, processed)
    sync(resources)
    with resources["postgres"].connect() as conn:
        person = pick_person(conn)
    job_resources = {k: resources[k] for k in ("postgres", "raw_store", "processed_store")}
    clear = {"ops": {"erase_person": {"config": {"email_hash": person["email"]}}}}
    with DagsterInstance.ephemeral() as instance:
        refused = hostpms_gdpr_erasure_job.execute_in_process(
            run_config=clear, resources=job_resources, instance=instance, raise_on_error=False
        )
        assert not refused.success
        events = [e for e in instance.all_logs(refused.run_id) if e.dagster_event]
        failure = " ".join(str(e.dagster_event.event_specific_data) for e in events)
    assert "keyed hash" in failure and person["email"] not in failure
    hashed = hasher().of("email", person["email"], None)
    config = {"ops": {"erase_person": {"config": {"email_hash": hashed}}}}
    with DagsterInstance.ephemeral() as instance:
        result = hostpms_gdpr_erasure_job.execute_in_process(
            run_config=config, resources=job_resources, instance=instance
        )
        assert result.success
        logs = " ".join(str(e.message) for e in instance.all_logs(result.run_id))
    for needle in needles(person):
        assert needle.decode() not in logs
    with resources["postgres"].connect() as conn:
        assert conn.execute("SELECT count(*) FROM guests WHERE email = %s",
                            (person["email"],)).fetchone() == (0,)  # fmt: skip
        (actor,) = conn.execute(
            "SELECT actor FROM gdpr_audit_log WHERE action = 'erasure'"
        ).fetchone()
    assert actor == f"dagster:{result.run_id}"

"""The local and the Spark engine leave the same rows in PostgreSQL and the same Parquet.

The same landed pages, with the tricky cases the local engine's tests know (PT
and ES variants, unknown values, every reject reason, out-of-order versions,
half-cent amounts, DST and leap days, one id on several pages), go through each
engine into its own schema and processed folder, in two rounds (the second
brings newer and older states of stored rows). Every stored column must match
except ``synced_at``, the moment of writing; so must the rejected records and
every Parquet partition file's rows.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities import ENTITIES, GUESTS, PAYMENTS, RESERVATIONS, ROOMS
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.storage import open_store
from hostpms_pipeline.warehouse import database, entity_store, ledger
from hostpms_pipeline_tests.test_entities import ES_GUEST, PT_GUEST
from hostpms_pipeline_tests.test_transform import REJECTS, reservation

LANDED_AT = datetime(2026, 3, 15, 14, 0, tzinfo=UTC)
NOT_COMPARED = {"synced_at"}  # when the row was written: each engine's own moment


def _at(hours: float) -> str:
    return (LANDED_AT + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reservations_round_one() -> dict[str, list[Any]]:
    es = dict(
        reservation_id="RSV-ES-1",
        property_id="ES-MAD-001",
        status="confirmada",
        channel="directo",
        pricing={"total": 2.675, "currency": "EUR", "rate_plan": "No reembolsable",
                 "iva": 0.24, "tasa_turistica": 1.005},
        guest={"name": "María", "phone": "612 34 56 78", "country": "ES", "nif": "12345678Z"},
    )  # fmt: skip
    return {
        "PT-LIS-001": [
            reservation(reservation_id="RSV-1", updated_at=_at(2)),
            reservation(reservation_id="RSV-HALF", pricing__total=1.005, pricing__iva=0.23),
            reservation(reservation_id="RSV-UNKNOWN", status="em_espera", channel="pombo"),
            # Leap day and the night the clocks go forward in Lisbon (2024-03-31).
            reservation(
                reservation_id="RSV-LEAP",
                dates={
                    "check_in": "2024-02-28",
                    "check_out": "2024-03-01",
                    "created_at": "2024-02-29T23:59:59.999999Z",
                },
            ),  # fmt: skip
            reservation(
                reservation_id="RSV-DST",
                dates={
                    "check_in": "2024-03-30",
                    "check_out": "2024-04-01",
                    "created_at": "2024-03-31T00:30:00+00:00",
                },
            ),  # fmt: skip
            reservation(
                reservation_id="RSV-DST-BACK",
                dates={
                    "check_in": "2024-10-26",
                    "check_out": "2024-10-28",
                    "created_at": "2024-10-27T01:30:00+01:00",
                },
            ),  # fmt: skip
            *[record for _, record in REJECTS],
        ],
        "ES-MAD-001": [reservation(**es)],
    }


def _other_entities_round_one() -> dict[tuple[str, str], list[Any]]:
    payment = {"payment_id": "PAY-1", "reservation_id": "RSV-1", "amount": 450.005,
               "currency": "EUR", "method": "mbway", "status": "pago",
               "paid_at": "2024-03-31T01:30:00Z", "updated_at": _at(0)}  # fmt: skip
    return {
        (GUESTS.collection, "PT-LIS-001"): [
            PT_GUEST,
            {**PT_GUEST, "guest_id": "GST-BAD", "nif": "123456780", "phone": "12"},
            {"name": "no id", "updated_at": _at(0)},
        ],
        (GUESTS.collection, "ES-MAD-001"): [ES_GUEST],
        (ROOMS.collection, "PT-LIS-001"): [
            {
                "room_id": "RM-1",
                "number": "101",
                "type": "Quarto Duplo",
                "floor": 1,
                "status": "limpo",
                "updated_at": _at(0),
            },
            {"room_id": "RM-2", "type": "Suite", "status": "em_obras", "updated_at": _at(0)},
            {"room_id": "RM-3", "floor": "two", "updated_at": _at(0)},
        ],  # fmt: skip
        (ROOMS.collection, "ES-MAD-001"): [
            {
                "room_id": "RM-1",
                "type": "Habitación Individual",
                "status": "En_Inspección",
                "updated_at": _at(0),
            },
        ],  # fmt: skip
        (PAYMENTS.collection, "PT-LIS-001"): [
            payment,
            {**payment, "payment_id": "PAY-UNPAID", "paid_at": None, "status": "pendente"},
            {**payment, "payment_id": "PAY-NEG", "amount": -1},
        ],
        (PAYMENTS.collection, "ES-MAD-001"): [
            {**payment, "method": "bizum", "status": "pagado", "amount": 0.1 + 0.2},
        ],
    }


def _round_two() -> dict[tuple[str, str], list[list[Any]]]:
    """Newer and older states of stored rows, one id on several pages, out of order."""
    return {
        (RESERVATIONS.collection, "PT-LIS-001"): [
            [  # page 1: a newer state, and an older one than stored (ignored)
                reservation(reservation_id="RSV-1", status="cancelado", updated_at=_at(5)),
                reservation(reservation_id="RSV-HALF", status="cancelado", updated_at=_at(-5)),
                reservation(reservation_id="RSV-NEW", updated_at=_at(1)),
            ],
            [  # page 2: the same ids again, the newest state of RSV-NEW, a stale RSV-1
                reservation(reservation_id="RSV-NEW", status="check_in", updated_at=_at(3)),
                reservation(reservation_id="RSV-1", status="no_show", updated_at=_at(4)),
                # a newer record with the same state: same version, later updated_at
                reservation(
                    reservation_id="RSV-UNKNOWN",
                    status="em_espera",
                    channel="pombo",
                    updated_at=_at(6),
                ),
            ],  # fmt: skip
        ],
        (GUESTS.collection, "PT-LIS-001"): [
            [{**PT_GUEST, "email": "novo@example.pt", "updated_at": _at(2)}]
        ],  # fmt: skip
        (PAYMENTS.collection, "PT-LIS-001"): [
            [
                {
                    "payment_id": "PAY-UNPAID",
                    "reservation_id": "RSV-1",
                    "amount": 10.005,
                    "currency": "EUR",
                    "method": "numerario",
                    "status": "pago",
                    "paid_at": "2024-02-29T12:00:00Z",
                    "updated_at": _at(3),
                }
            ],
        ],  # fmt: skip
    }


def _land(store, schemas, conn_for, collection, property_id, records, sequence) -> None:
    body = orjson.dumps(
        {"kind": "polling", "source": "hostpms", "property_id": property_id,
         "collection": collection, "received_at": _at(sequence / 60), "data": records}
    )  # fmt: skip
    key = f"hostpms/{property_id}/polling/{sequence:04d}_{collection}.json"
    location = store.put(key, body)
    for schema in schemas:
        with conn_for(schema) as conn, conn.transaction():
            ledger.record_landed_file(
                conn, location, property_id, "polling", collection, len(records), LANDED_AT
            )


def _comparable(table: pa.Table) -> list[dict]:
    names = [name for name in table.column_names if name not in NOT_COMPARED]
    rows = table.select(names).to_pylist()
    return sorted(rows, key=lambda row: (row.get("id") or "", str(row.get("raw_location"))))


def _rejected(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT collection, hotel_id, external_id, reason, detail, raw_location, record_index,"
        " source_updated_at FROM rejected_records ORDER BY raw_location, record_index"
    ).fetchall()


def _parquet_files(processed: str, spec) -> dict[str, list[dict]]:
    """Each partition file (relative path) and its rows."""
    filesystem, root = parquet_store.filesystem_for(processed)
    summary = parquet_store.dataset_summary(processed, spec)
    files = {}
    for path in summary.files:
        relative = path.split(f"/{spec.table}/", 1)[1]
        files[relative] = _comparable(pa.parquet.read_table(path, filesystem=filesystem))
    return files


@pytest.fixture
def two_schemas(pg_url, pg_schema):
    other = f"test_{uuid.uuid4().hex[:12]}"
    database.migrate(pg_url, other)
    yield {"local": pg_schema, "spark": other}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(other)))


def test_both_engines_leave_identical_rows_rejects_and_parquet(
    pg_url, two_schemas, tmp_path, spark_session
):
    from hostpms_pipeline.engine.spark.engine import SparkEngine

    engines = {
        "local": pipeline,
        "spark": SparkEngine(spark_session, str(tmp_path / "spark-staging")),
    }
    processed = {name: str(tmp_path / f"processed-{name}") for name in engines}
    store = open_store(str(tmp_path / "raw"))
    tables = load_mapping_tables()

    def conn_for(schema):
        return database.connect(pg_url, schema)

    def process_everything():
        for name, engine in engines.items():
            with conn_for(two_schemas[name]) as conn:
                for spec in ENTITIES:
                    engine.process_pending(spec, store, conn, processed[name], tables)

    sequence = 0
    first_round = {
        **{(RESERVATIONS.collection, p): r for p, r in _reservations_round_one().items()},
        **_other_entities_round_one(),
    }
    for (collection, property_id), records in first_round.items():
        sequence += 1
        _land(store, two_schemas.values(), conn_for, collection, property_id, records, sequence)
    process_everything()
    for (collection, property_id), pages in _round_two().items():
        for records in pages:
            sequence += 1
            _land(store, two_schemas.values(), conn_for, collection, property_id, records, sequence)
    process_everything()

    with conn_for(two_schemas["local"]) as local, conn_for(two_schemas["spark"]) as spark:
        for spec in ENTITIES:
            local_rows = entity_store.fetch_rows(local, spec)
            assert local_rows.num_rows >= 2, spec.table  # the cases above did load
            assert _comparable(entity_store.fetch_rows(spark, spec)) == _comparable(local_rows)
        versions = entity_store.stored_keys(local, RESERVATIONS)["version"].to_pylist()
        assert max(versions) == 2  # the newer states did bump a version
        assert _rejected(spark) == _rejected(local)
        assert len(_rejected(local)) > len(REJECTS)
        assert not ledger.pending_files(spark) and not ledger.pending_files(local)
    for spec in ENTITIES:
        local_files = _parquet_files(processed["local"], spec)
        assert local_files, spec.table
        assert _parquet_files(processed["spark"], spec) == local_files

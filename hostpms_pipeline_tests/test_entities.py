"""Guests, rooms and payments from their specs: golden cases from contract section 3 for a
Portuguese and a Spanish property, identifiers, rejects, checks, and an entity added by a
spec alone."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest
from dagster import MultiPartitionsDefinition, StaticPartitionsDefinition

from hostpms_pipeline.defs.assets import entity_assets
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.engine import pipeline, reading, transform
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.engine.quality import batch_rules
from hostpms_pipeline.entities import ENTITIES, GUESTS, PAYMENTS, RESERVATIONS, ROOMS
from hostpms_pipeline.entities.row_ids import row_id, row_ids_hex
from hostpms_pipeline.entities.schema import REJECTED_SCHEMA, row_schema
from hostpms_pipeline.entities.spec import (
    Blank,
    Check,
    Column,
    EntitySpec,
    NotNegativeCheck,
    Parsed,
    Raw,
    Reject,
    Text,
    mapped,
)
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.storage import LocalObjectStore
from hostpms_pipeline.warehouse import entity_store, ledger, tables

SYNCED_AT = datetime(2026, 3, 15, 14, 30, tzinfo=UTC)
UPDATED = "2026-03-15T14:00:00Z"


def page(collection: str, property_id: str, records: list[Any]) -> bytes:
    return orjson.dumps(
        {
            "kind": "polling",
            "source": "hostpms",
            "property_id": property_id,
            "collection": collection,
            "received_at": "2026-03-15T14:00:01Z",
            "data": records,
        }
    )


def run(spec: EntitySpec, property_id: str, records: list[Any]) -> tuple[pa.Table, pa.Table]:
    files = [
        (
            f"hostpms/{property_id}/polling/p_{spec.collection}.json",
            page(spec.collection, property_id, records),
        )
    ]
    raw = reading.read_landed(spec, files)
    return transform.to_rows(spec, raw, load_mapping_tables(), SYNCED_AT)


def one_row(spec: EntitySpec, property_id: str, record: dict[str, Any]) -> dict[str, Any]:
    rows, rejected = run(spec, property_id, [record])
    assert rejected.num_rows == 0, rejected.to_pylist()
    assert rows.schema == row_schema(spec)
    return rows.to_pylist()[0]


# --- Guests ---------------------------------------------------------------------------------

PT_GUEST = {  # the contract's sample guest
    "guest_id": "GST-001",
    "name": "João Silva",
    "email": "joao.silva@example.pt",
    "phone": "+351912345678",
    "country": "PT",
    "nif": "123456789",
    "document_type": "cartao_cidadao",
    "document_number": "12345678 9 ZZ4",
    "date_of_birth": "1985-02-11",
    "language": "pt",
    "marketing_consent": False,
    "updated_at": UPDATED,
}
ES_GUEST = {
    "guest_id": "GST-900",
    "name": "María Pérez García",
    "email": "maria@example.es",
    "phone": "612 34 56 78",  # national format: the property's country is the default region
    "country": "ES",
    "nif": "12345678Z",
    "document_type": " DNI ",
    "document_number": "12345678Z",
    "date_of_birth": "1990-07-01",
    "language": "es",
    "marketing_consent": True,
    "updated_at": UPDATED,
}


def test_portuguese_guest_maps_to_the_unified_guest():
    guest = one_row(GUESTS, "PT-LIS-001", PT_GUEST)
    assert guest["id"] == str(uuid.uuid5(GUESTS.id_namespace, "hostpms|PT-LIS-001|GST-001"))
    assert guest["external_id"] == "GST-001" and guest["hotel_id"] == "PT-LIS-001"
    assert (guest["name"], guest["email"]) == ("João Silva", "joao.silva@example.pt")
    assert (guest["phone"], guest["phone_valid"]) == ("+351912345678", True)
    assert (guest["nif"], guest["nif_valid"]) == ("123456789", True)
    assert (guest["document_type"], guest["document_type_original"]) == (
        "national_id",
        "cartao_cidadao",
    )
    assert guest["document_number_valid"] is None  # a citizen card: no check digits kept here
    assert guest["date_of_birth"] == date(1985, 2, 11)
    assert guest["marketing_consent"] is False
    assert guest["version"] == 1


def test_spanish_guest_phone_in_national_format_becomes_e164_and_dni_is_validated():
    guest = one_row(GUESTS, "ES-MAD-001", ES_GUEST)
    assert (guest["phone"], guest["phone_valid"]) == ("+34612345678", True)
    assert guest["nif_valid"] is True
    assert (guest["document_type"], guest["document_type_original"]) == ("national_id", " DNI ")
    assert guest["document_number_valid"] is True
    assert guest["marketing_consent"] is True


@pytest.mark.parametrize(
    ("property_id", "changes", "flag"),
    [
        ("PT-LIS-001", {"nif": "123456780"}, "nif_valid"),  # wrong check digit
        ("ES-MAD-001", {"nif": "12345678A"}, "nif_valid"),  # wrong DNI letter
        (
            "ES-MAD-001",
            {"document_type": "dni", "document_number": "12345678A"},
            "document_number_valid",
        ),
        (
            "ES-MAD-001",
            {"document_type": "nie", "document_number": "X1234567A"},
            "document_number_valid",
        ),
        ("PT-LIS-001", {"phone": "12345"}, "phone_valid"),
    ],
)
def test_an_invalid_identifier_is_kept_as_received_and_flagged(property_id, changes, flag):
    base = PT_GUEST if property_id.startswith("PT") else ES_GUEST
    guest = one_row(GUESTS, property_id, {**base, **changes})
    assert guest[flag] is False
    field = flag.removesuffix("_valid")
    assert guest[field] == {**base, **changes}[field]  # as received, never dropped


def test_a_portuguese_guest_at_a_spanish_hotel_has_their_nif_checked_as_portuguese():
    guest = one_row(GUESTS, "ES-MAD-001", {**PT_GUEST, "guest_id": "GST-2"})
    assert guest["nif_valid"] is True


def test_the_identifier_check_counts_invalid_ones_and_warns():
    rows, _ = run(
        GUESTS,
        "PT-LIS-001",
        [PT_GUEST, {**PT_GUEST, "guest_id": "GST-002", "nif": "999999999", "phone": "1"}],
    )
    (rule,) = [r for r in batch_rules(GUESTS) if r.name == "identifiers_valid"]
    outcome = rule.evaluate(rows)
    assert not rule.blocking and not outcome.passed
    assert outcome.metadata["invalid_by_column"] == {
        "phone_valid": 1,
        "nif_valid": 1,
        "document_number_valid": 0,
    }


# --- Rooms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("property_id", "status", "room_type", "expected"),
    [
        ("PT-LIS-001", "limpo", "Quarto Duplo", ("clean", "Double Room")),
        ("PT-LIS-001", "EM_INSPECAO", "quarto  twin", ("inspecting", "Twin Room")),
        ("PT-LIS-001", " fora_de_serviço ", "Suite", ("out_of_service", "Suite")),
        ("ES-MAD-001", "sucia", "Habitacion Doble", ("dirty", "Double Room")),
        ("ES-MAD-001", "En_Inspección", "Habitación Individual", ("inspecting", "Single Room")),
        ("ES-MAD-001", "ocupada", "habitación twin", ("occupied", "Twin Room")),
    ],
)
def test_room_status_and_type_in_portuguese_and_spanish(property_id, status, room_type, expected):
    record = {
        "room_id": "RM-201",
        "number": "201",
        "type": room_type,
        "floor": 2,
        "max_occupancy": 2,
        "status": status,
        "updated_at": UPDATED,
    }
    room = one_row(ROOMS, property_id, record)
    assert (room["status"], room["type"]) == expected
    assert (room["status_original"], room["type_original"]) == (status, room_type)
    assert (room["floor"], room["max_occupancy"]) == (2, 2)


def test_an_unknown_room_status_keeps_the_room_and_is_reported():
    rows, rejected = run(
        ROOMS,
        "PT-LIS-001",
        [{"room_id": "RM-1", "type": "Suite", "status": "em_obras", "updated_at": UPDATED}],
    )
    assert rejected.num_rows == 0
    assert rows["status"].to_pylist() == ["unknown"]
    rules = {rule.name: rule for rule in batch_rules(ROOMS)}
    assert rules["room_status_within_set"].evaluate(rows).passed  # unknown is in the set...
    report = rules["mapped_values_known"].evaluate(rows)  # ...and reported
    assert not report.passed
    assert report.metadata["unknown_values"] == {"status": {"em_obras": 1}}


def test_a_status_a_mapping_file_sends_outside_the_set_fails_the_blocking_check():
    rows, _ = run(
        ROOMS, "PT-LIS-001", [{"room_id": "RM-1", "status": "limpo", "updated_at": UPDATED}]
    )
    rows = rows.set_column(rows.schema.get_field_index("status"), "status", pa.array(["spotless"]))
    rule = next(r for r in batch_rules(ROOMS) if r.name == "room_status_within_set")
    assert rule.blocking and not rule.evaluate(rows).passed


# --- Payments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("property_id", "method", "status", "expected"),
    [
        ("PT-LIS-001", "mbway", "pago", ("mbway", "paid")),
        ("PT-LIS-001", "Cartão_Crédito", "PENDENTE", ("credit_card", "pending")),
        ("PT-LIS-001", "numerario", "falhado", ("cash", "failed")),
        ("PT-LIS-001", "multibanco", " reembolsado ", ("multibanco", "refunded")),
        ("ES-MAD-001", "bizum", "pagado", ("bizum", "paid")),
        ("ES-MAD-001", "tarjeta_debito", "pendiente", ("debit_card", "pending")),
        ("ES-MAD-001", "efectivo", "fallido", ("cash", "failed")),
        ("ES-MAD-001", "transferencia", "reembolsado", ("bank_transfer", "refunded")),
        ("ES-MAD-001", "cheque", "pagado", ("unknown", "paid")),
    ],
)
def test_payment_method_and_status_in_portuguese_and_spanish(property_id, method, status, expected):
    record = {
        "payment_id": "PAY-1",
        "reservation_id": "RSV-12345",
        "amount": 450.005,  # half a cent: rounded half away from zero
        "currency": "EUR",
        "method": method,
        "status": status,
        "paid_at": "2024-03-02T09:00:00Z",
        "updated_at": UPDATED,
    }
    payment = one_row(PAYMENTS, property_id, record)
    assert (payment["method"], payment["status"]) == expected
    assert (payment["method_original"], payment["status_original"]) == (method, status)
    assert payment["amount"] == Decimal("450.01")
    assert payment["paid_at"] == datetime(2024, 3, 2, 9, tzinfo=UTC)
    assert payment["reservation_id"] == "RSV-12345"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"payment_id": " "}, "missing_payment_id"),
        ({"amount": "abc"}, "amount_not_a_number"),
        ({"amount": None}, "amount_not_a_number"),
        ({"amount": -1}, "negative_amount"),
        ({"amount": 1e12}, "amount_out_of_range"),
        ({"currency": "eur"}, "invalid_currency"),
        ({"paid_at": "yesterday"}, "invalid_date"),
        ({"updated_at": None}, "missing_updated_at"),
    ],
)
def test_each_payment_reject_reason(changes, reason):
    record = {"payment_id": "PAY-1", "amount": 10, "currency": "EUR", "updated_at": UPDATED}
    rows, rejected = run(PAYMENTS, "PT-LIS-001", [{**record, **changes}])
    assert rows.num_rows == 0
    assert rejected.schema == REJECTED_SCHEMA
    (row,) = rejected.to_pylist()
    assert (row["reason"], row["collection"], row["hotel_id"]) == (reason, "payments", "PT-LIS-001")


@pytest.mark.parametrize(
    ("spec", "record", "reason"),
    [
        (GUESTS, {"name": "x", "updated_at": UPDATED}, "missing_guest_id"),
        (
            GUESTS,
            {"guest_id": "G", "date_of_birth": "1985-02-30", "updated_at": UPDATED},
            "invalid_date",
        ),
        (ROOMS, {"room_id": "R", "floor": "two", "updated_at": UPDATED}, "invalid_integer"),
        (ROOMS, {"room_id": "R", "updated_at": "15/03/2026"}, "invalid_date"),
    ],
)
def test_guest_and_room_rejects_are_kept_with_their_reason(spec, record, reason):
    rows, rejected = run(spec, "ES-MAD-001", [record])
    assert rows.num_rows == 0
    assert rejected["reason"].to_pylist() == [reason]
    assert rejected["collection"].to_pylist() == [spec.collection]


def test_every_raw_record_becomes_a_row_or_a_reject_for_every_entity():
    for spec in ENTITIES:
        good = {spec.id_field: "X-1", "updated_at": UPDATED}
        records = [good, {"updated_at": UPDATED}, "not a record", {**good, spec.id_field: "X-2"}]
        rows, rejected = run(spec, "PT-LIS-001", records)
        assert rows.num_rows + rejected.num_rows == len(records), spec.collection


def test_payments_whose_reservation_is_unknown_are_counted_with_examples(pg_conn):
    payment = {"payment_id": "PAY-1", "reservation_id": "RSV-NOPE", "amount": 1, "currency": "EUR",
               "updated_at": UPDATED}  # fmt: skip
    rows, _ = run(
        PAYMENTS,
        "PT-LIS-001",
        [payment, {**payment, "payment_id": "PAY-2", "reservation_id": None}],
    )
    entity_store.upsert(pg_conn, PAYMENTS, transform.deduplicate(rows))
    assert entity_store.unknown_references(pg_conn, PAYMENTS, "reservation_id", RESERVATIONS) == (
        1,
        ["PAY-1"],
    )


# --- A fifth entity, from a spec alone ------------------------------------------------------

RATE_PLANS = EntitySpec(
    collection="rate_plans",
    id_field="rate_plan_id",
    table="rate_plans",
    row="rate_plan",
    id_namespace=uuid.UUID("11111111-2222-5333-8444-555555555555"),
    columns=(
        Column("name", "string", Text("name"), required=True),
        Column("base_price", "money", Parsed("base_price", "money")),
        Column("valid_from", "date", Parsed("valid_from", "date")),
        *mapped("refund", "refund", "rate_plan"),
    ),
    rejects=(Reject("missing_name", "name is missing or blank", Blank(Raw("name"))),),
    partition_column="valid_from",
    checks=(
        Check(
            "prices_not_negative",
            "Prices are not negative.",
            NotNegativeCheck(("base_price",)),
            True,
        ),
    ),
    preview=("external_id", "name", "refund"),
)


@pytest.mark.both_engines
def test_a_fifth_entity_loads_from_its_spec_alone(pg_conn, pg_url, pg_schema, tmp_path, engine):
    raw_store = LocalObjectStore(tmp_path / "raw")
    processed = str(tmp_path / "processed")
    records = [
        {"rate_plan_id": "RP-1", "name": "Flexível", "base_price": 99.995, "valid_from": "2026-01-01",
         "refund": "Flexivel", "updated_at": UPDATED},
        {"rate_plan_id": "RP-2", "name": "Promo", "base_price": "80", "valid_from": "2026-01-02",
         "refund": "Não Reembolsável", "updated_at": UPDATED},
        {"rate_plan_id": "RP-3", "name": " ", "updated_at": UPDATED},
    ]  # fmt: skip
    location = raw_store.put(
        "hostpms/PT-LIS-001/polling/rp.json", page("rate_plans", "PT-LIS-001", records)
    )
    tables.ensure_tables(pg_conn, [RATE_PLANS])
    ledger.record_landed_file(
        pg_conn, location, "PT-LIS-001", "polling", "rate_plans", 3, SYNCED_AT
    )
    pg_conn.commit()

    results = engine.process_pending(
        RATE_PLANS, raw_store, pg_conn, processed, load_mapping_tables()
    )

    assert results[0].stats.inserted == 2 and results[0].rejected_written == 1
    stored = entity_store.fetch_rows(pg_conn, RATE_PLANS).to_pylist()
    assert [(r["external_id"], r["base_price"], r["refund"]) for r in stored] == [
        ("RP-1", Decimal("100.00"), "flexible"),
        ("RP-2", Decimal("80.00"), "non_refundable"),
    ]
    reject = pg_conn.execute("SELECT collection, reason FROM rejected_records").fetchall()
    assert reject == [("rate_plans", "missing_name")]
    in_parquet = parquet_store.read_rows(processed, RATE_PLANS)
    assert pipeline.key_set(in_parquet) == pipeline.key_set(
        entity_store.stored_keys(pg_conn, RATE_PLANS)
    )
    assert (tmp_path / "processed/rate_plans/source=hostpms/year=2026/month=01/day=02").is_dir()

    # The same factory makes its asset chain and checks, in its own group.
    partitions = MultiPartitionsDefinition(
        {
            "property": StaticPartitionsDefinition(["PT-LIS-001"]),
            "month": StaticPartitionsDefinition(["2026-03-01"]),
        }
    )
    assets = entity_assets(RATE_PLANS, partitions)
    keys = entity_keys(RATE_PLANS)
    made = {key for a in assets for key in a.keys}
    assert made == {keys.raw, keys.mapped, keys.deduplicated, keys.table, keys.parquet}
    assert {a.group_names_by_key[k] for a in assets for k in a.keys} == {"rate_plans"}
    checks = {key.name for a in assets for key in a.check_keys}
    assert {"prices_not_negative", "unique_rate_plan_key", "mapped_values_known"} <= checks


@pytest.mark.parametrize("spec", ENTITIES, ids=lambda spec: spec.collection)
def test_row_ids_in_bulk_are_the_row_ids(spec):
    external_ids = ["R-1", "ñ-2", "x" * 40, ""]
    bulk = row_ids_hex(spec, "PT-LIS-001", external_ids)
    assert [uuid.UUID(hex=value) for value in bulk] == [
        uuid.UUID(row_id(spec, "PT-LIS-001", external_id)) for external_id in external_ids
    ]

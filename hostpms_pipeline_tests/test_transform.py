"""Landed raw pages → bookings and rejected records → one row per booking."""

from __future__ import annotations

import copy
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pytest

from hostpms_pipeline.engine import reading
from hostpms_pipeline.engine import transform as engine_transform
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.engine.transform import deduplicate
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.entities.row_ids import row_id
from hostpms_pipeline.entities.schema import REJECTED_SCHEMA, row_schema

# The reservation spec's steps, as these golden tests call them.
BOOKING_SCHEMA = row_schema(RESERVATIONS)
BOOKING_ID_NAMESPACE = RESERVATIONS.id_namespace


def booking_id(hotel_id: str, external_id: str) -> str:
    return row_id(RESERVATIONS, hotel_id, external_id)


def read_landed(files) -> pa.Table:
    return reading.read_landed(RESERVATIONS, files)


def to_bookings(raw: pa.Table, tables, synced_at: datetime) -> tuple[pa.Table, pa.Table]:
    return engine_transform.to_rows(RESERVATIONS, raw, tables, synced_at)


SYNCED_AT = datetime(2024, 3, 15, 14, 30, tzinfo=UTC)
RECEIVED_AT = "2024-03-15T14:00:01.250000Z"

# PRD TR-2's sample reservation, plus the contract's updated_at.
TR2_RESERVATION: dict[str, Any] = {
    "reservation_id": "RSV-12345",
    "property_id": "PT-LIS-001",
    "guest": {
        "name": "João Silva",
        "email": "joao.silva@example.pt",
        "phone": "+351912345678",
        "country": "PT",
        "nif": "123456789",
    },
    "room": {"type": "Quarto Duplo", "number": "201", "floor": 2},
    "dates": {
        "check_in": "2024-03-20",
        "check_out": "2024-03-25",
        "created_at": "2024-03-01T10:30:00Z",
    },
    "pricing": {
        "total": 450.00,
        "currency": "EUR",
        "rate_plan": "Flexível",
        "iva": 103.50,
        "taxa_turistica": 10.00,
    },
    "status": "confirmado",
    "channel": "booking_com",
    "payment_method": "credit_card",
    "special_requests": "Quarto silencioso",
    "updated_at": "2024-03-15T14:00:00Z",
}
# PRD TR-2's unified sample, with the columns the schema adds.
TR2_BOOKING: dict[str, Any] = {
    "external_id": "RSV-12345",
    "source": "hostpms",
    "hotel_id": "PT-LIS-001",
    "guest_name": "João Silva",
    "guest_email": "joao.silva@example.pt",
    "guest_phone": "+351912345678",
    "room_number": "201",
    "room_type": "Double Room",
    "room_type_original": "Quarto Duplo",
    "check_in_date": datetime(2024, 3, 20).date(),
    "check_out_date": datetime(2024, 3, 25).date(),
    "booked_at": datetime(2024, 3, 1, 10, 30, tzinfo=UTC),
    "total_amount": Decimal("450.00"),
    "currency": "EUR",
    "iva_amount": Decimal("103.50"),
    "tourist_tax_amount": Decimal("10.00"),
    "rate_plan": "flexible",
    "rate_plan_original": "Flexível",
    "status": "confirmed",
    "status_original": "confirmado",
    "channel": "ota",
    "channel_original": "booking_com",
    "payment_method": "credit_card",
    "lead_time": 19,
    "length_of_stay": 5,
    "source_updated_at": datetime(2024, 3, 15, 14, 0, tzinfo=UTC),
    "event_received_at": datetime(2024, 3, 15, 14, 0, 1, 250000, tzinfo=UTC),
    "raw_location": "hostpms/PT-LIS-001/polling/page-1.json",
    "version": 1,
}


def reservation(**changes: Any) -> dict[str, Any]:
    """The TR-2 reservation with ``changes``; ``section__field`` reaches nested fields."""
    record = copy.deepcopy(TR2_RESERVATION)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        (record[section] if field else record)[field or section] = value
    return record


def page(records: list[Any], property_id: str = "PT-LIS-001", **envelope: Any) -> bytes:
    body = {
        "kind": "polling",
        "source": "hostpms",
        "property_id": property_id,
        "collection": "reservations",
        "received_at": RECEIVED_AT,
        "request": {},
        "next_cursor": None,
        "data": records,
        **envelope,
    }
    return orjson.dumps(body)


def transform(*pages: bytes) -> tuple[pa.Table, pa.Table]:
    files = [
        (f"hostpms/PT-LIS-001/polling/page-{i}.json", body) for i, body in enumerate(pages, start=1)
    ]
    return to_bookings(read_landed(files), load_mapping_tables(), SYNCED_AT)


def one_booking(record: dict[str, Any]) -> dict[str, Any]:
    bookings, rejected = transform(page([record]))
    assert rejected.num_rows == 0, rejected.to_pylist()
    return bookings.to_pylist()[0]


def test_tr2_sample_maps_to_the_tr2_unified_sample():
    bookings, rejected = transform(page([TR2_RESERVATION]))
    assert bookings.schema == BOOKING_SCHEMA
    assert rejected.schema == REJECTED_SCHEMA and rejected.num_rows == 0
    (booking,) = bookings.to_pylist()
    assert booking["id"] == str(uuid.uuid5(BOOKING_ID_NAMESPACE, "hostpms|PT-LIS-001|RSV-12345"))
    assert booking["synced_at"] == SYNCED_AT
    assert len(booking["state_hash"]) == 32
    assert {
        k: v for k, v in booking.items() if k not in {"id", "synced_at", "state_hash"}
    } == TR2_BOOKING


def test_spanish_reservation_uses_tasa_turistica_and_spanish_values():
    record = reservation(
        property_id="ES-MAD-001",
        room__type="Habitacion Doble",
        status="CONFIRMADA",
        channel="directo",
        pricing={
            "total": 300,
            "currency": "EUR",
            "rate_plan": "No Reembolsable",
            "iva": 27.27,
            "tasa_turistica": 2.5,
        },
    )
    booking = one_booking(record)
    assert (booking["room_type"], booking["status"], booking["channel"], booking["rate_plan"]) == (
        "Double Room",
        "confirmed",
        "direct",
        "non_refundable",
    )
    assert booking["tourist_tax_amount"] == Decimal("2.50")
    assert booking["hotel_id"] == "ES-MAD-001"


def test_unknown_values_keep_the_booking_and_the_original():
    booking = one_booking(reservation(status="pre_reserva", room__type=None))
    assert (booking["status"], booking["status_original"]) == ("unknown", "pre_reserva")
    assert (booking["room_type"], booking["room_type_original"]) == ("unknown", None)


def test_hotel_falls_back_to_the_polled_property():
    record = reservation()
    del record["property_id"]
    assert one_booking(record)["hotel_id"] == "PT-LIS-001"


@pytest.mark.parametrize(
    ("total", "expected"),
    [
        (450.00, "450.00"),
        (1234.56, "1234.56"),
        (0.1 + 0.2, "0.30"),  # 0.30000000000000004 on the wire
        (0.07, "0.07"),
        (1.005, "1.01"),  # half away from zero, from the decimal text
        (2.675, "2.68"),
        (99999999.99, "99999999.99"),
        (450, "450.00"),
        ("450.10", "450.10"),  # numeric text counts as a number
    ],
)
def test_money_is_exact_to_the_cent(total, expected):
    assert one_booking(reservation(pricing__total=total))["total_amount"] == Decimal(expected)


def test_tax_that_is_not_a_number_is_left_empty():
    booking = one_booking(reservation(pricing__iva="n/a"))
    assert booking["iva_amount"] is None and booking["total_amount"] == Decimal("450.00")


REJECTS = [
    ("missing_reservation_id", reservation(reservation_id=None)),
    ("missing_reservation_id", reservation(reservation_id="  ")),
    ("invalid_property_id", reservation(property_id="PT-LIS-001|RSV")),
    ("missing_updated_at", reservation(updated_at=None)),
    ("invalid_date", reservation(updated_at="yesterday")),
    ("missing_dates", reservation(dates__check_in=None)),
    ("missing_dates", reservation(dates={})),
    ("invalid_date", reservation(dates__check_in="2024-13-45")),
    ("invalid_date", reservation(dates__check_out="2024-02-30")),
    ("invalid_date", reservation(dates__created_at="01/03/2024")),
    ("checkout_not_after_checkin", reservation(dates__check_out="2024-03-19")),
    (
        "checkout_not_after_checkin",
        reservation(dates__check_out="2024-03-20"),
    ),  # same day: no night
    ("total_not_a_number", reservation(pricing__total="quatrocentos")),
    ("total_not_a_number", reservation(pricing__total=None)),
    ("total_not_a_number", reservation(pricing__total=True)),
    ("total_not_a_number", reservation(pricing__total={"amount": 450})),
    ("total_out_of_range", reservation(pricing__total=1e12)),
    ("negative_total", reservation(pricing__total=-0.01)),
    ("invalid_currency", reservation(pricing__currency="eur")),
    ("invalid_currency", reservation(pricing__currency="EURO")),
    ("invalid_currency", reservation(pricing__currency="XYZ")),
    ("invalid_currency", reservation(pricing__currency=None)),
    ("missing_reservation_id", "not a record"),
]


@pytest.mark.parametrize(("reason", "record"), REJECTS)
def test_each_reject_reason(reason, record):
    bookings, rejected = transform(page([TR2_RESERVATION, record]))
    assert bookings.num_rows == 1
    (row,) = rejected.to_pylist()
    assert row["reason"] == reason
    assert (row["raw_location"], row["record_index"], row["hotel_id"]) == (
        "hostpms/PT-LIS-001/polling/page-1.json",
        1,
        "PT-LIS-001",
    )
    assert row["rejected_at"] == SYNCED_AT


def test_reject_details_carry_no_guest_data():
    _, rejected = transform(page([record for _, record in REJECTS if isinstance(record, dict)]))
    details = " ".join(rejected.column("detail").to_pylist())
    for secret in ("João", "Silva", "joao.silva", "912345678", "123456789"):
        assert secret not in details


def test_every_raw_row_lands_in_exactly_one_output():
    records = [reservation(reservation_id=f"RSV-{i}") for i in range(5)] + [r for _, r in REJECTS]
    raw = read_landed([("a.json", page(records[:7])), ("b.json", page(records[7:]))])
    bookings, rejected = to_bookings(raw, load_mapping_tables(), SYNCED_AT)
    assert bookings.num_rows + rejected.num_rows == raw.num_rows == len(records)
    assert bookings.num_rows == 5


def test_read_landed_tolerates_pretty_printed_pages_and_webhook_events():
    pretty = orjson.dumps(orjson.loads(page([TR2_RESERVATION])), option=orjson.OPT_INDENT_2) + b"\n"
    webhook = page(
        [reservation(status="cancelado")],
        kind="webhook",
        event_id="evt_1",
        event_type="reservation.cancelled",
    )
    raw = read_landed([("pretty.json", pretty), ("webhook.json", webhook)])
    assert raw.column("raw_location").to_pylist() == ["pretty.json", "webhook.json"]
    assert raw.column("status").to_pylist() == ["confirmado", "cancelado"]
    assert raw.column("received_at")[0].as_py() == datetime(
        2024, 3, 15, 14, 0, 1, 250000, tzinfo=UTC
    )


def test_read_landed_numbers_records_within_each_file():
    raw = read_landed(
        [("a.json", page([TR2_RESERVATION] * 3)), ("b.json", page([TR2_RESERVATION] * 2))]
    )
    assert raw.column("record_index").to_pylist() == [0, 1, 2, 0, 1]


def test_read_landed_of_nothing_is_an_empty_table():
    raw = read_landed([])
    bookings, rejected = to_bookings(raw, load_mapping_tables(), SYNCED_AT)
    assert raw.num_rows == bookings.num_rows == rejected.num_rows == 0


def test_a_file_that_is_not_a_page_is_an_error():
    with pytest.raises(ValueError, match="broken.json"):
        read_landed([("broken.json", orjson.dumps({"data": "nope"}))])


def versions(*updates: tuple[str, str, str]) -> list[bytes]:
    """One page per (updated_at, status, received_at)."""
    return [
        page([reservation(updated_at=updated, status=status)], received_at=received)
        for updated, status, received in updates
    ]


def test_deduplicate_keeps_the_latest_state_even_out_of_order():
    pages = versions(
        ("2024-03-15T14:00:00Z", "confirmado", "2024-03-15T14:00:01Z"),
        ("2024-03-18T09:00:00Z", "check_in", "2024-03-18T09:00:02Z"),
        (
            "2024-03-16T10:00:00Z",
            "cancelado",
            "2024-03-19T00:00:00Z",
        ),  # older state, delivered late
        ("2024-03-18T09:00:00Z", "check_in", "2024-03-18T09:05:00Z"),  # replayed webhook
    )
    bookings, _ = transform(*pages, page([reservation(reservation_id="RSV-2")]))
    unique = deduplicate(bookings).to_pylist()
    assert len(unique) == 2
    latest = next(row for row in unique if row["external_id"] == "RSV-12345")
    assert latest["status"] == "checked_in"
    assert latest["event_received_at"] == datetime(
        2024, 3, 18, 9, 5, tzinfo=UTC
    )  # tie: later receipt


def test_deduplicate_is_independent_of_input_order():
    pages = versions(
        ("2024-03-15T14:00:00Z", "confirmado", RECEIVED_AT),
        ("2024-03-15T14:00:00Z", "cancelado", RECEIVED_AT),  # same instant, different state
        ("2024-03-14T14:00:00Z", "check_in", RECEIVED_AT),
    )
    files = [(f"page-{i}.json", body) for i, body in enumerate(pages)]

    def latest(ordered_files: list[tuple[str, bytes]]) -> pa.Table:
        return deduplicate(
            to_bookings(read_landed(ordered_files), load_mapping_tables(), SYNCED_AT)[0]
        )

    forward, backward = latest(files), latest(files[::-1])
    assert forward.num_rows == 1
    assert forward.equals(backward)
    assert forward.column("raw_location").to_pylist() == ["page-1.json"]  # tie: the later location


def test_same_key_in_another_hotel_is_another_booking():
    bookings, _ = transform(page([TR2_RESERVATION, reservation(property_id="PT-POR-002")]))
    unique = deduplicate(bookings)
    assert unique.num_rows == 2
    assert len(set(unique.column("id").to_pylist())) == 2


def test_booking_id_is_uuid5_of_the_natural_key():
    assert booking_id("PT-LIS-001", "RSV-12345") == str(
        uuid.uuid5(BOOKING_ID_NAMESPACE, "hostpms|PT-LIS-001|RSV-12345")
    )


def test_ids_and_state_hashes_are_identical_in_another_process():
    bookings, _ = transform(
        page([TR2_RESERVATION, reservation(reservation_id="RSV-9", status="cancelado")])
    )
    script = (
        "import sys; sys.path.insert(0, '.');"
        "from hostpms_pipeline_tests.test_transform import TR2_RESERVATION, reservation, page, transform;"
        "b, _ = transform(page([TR2_RESERVATION, reservation(reservation_id='RSV-9', status='cancelado')]));"
        "print(*b.column('id').to_pylist(), *b.column('state_hash').to_pylist())"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345"},
    )
    assert (
        other.stdout.split()
        == bookings.column("id").to_pylist() + bookings.column("state_hash").to_pylist()
    )


def test_state_hash_changes_with_state_only():
    base = one_booking(TR2_RESERVATION)
    replay = one_booking(reservation(updated_at="2024-03-16T00:00:00Z"))
    changed = one_booking(reservation(pricing__total=451.00))
    assert replay["state_hash"] == base["state_hash"]
    assert changed["state_hash"] != base["state_hash"]


def test_a_page_with_an_ill_typed_value_is_read_with_the_others():
    good = page([reservation(reservation_id="RSV-1"), reservation(reservation_id="RSV-2")])
    odd = page([reservation(reservation_id="RSV-3", pricing__total={"amount": 1})])
    raw = read_landed([("a.json", good), ("b.json", odd), ("c.json", good)])
    assert raw.column("raw_location").to_pylist() == [
        "a.json",
        "a.json",
        "b.json",
        "c.json",
        "c.json",
    ]
    assert raw.column("record_index").to_pylist() == [0, 1, 0, 0, 1]
    bookings, rejected = to_bookings(raw, load_mapping_tables(), SYNCED_AT)
    assert bookings.num_rows == 4
    assert rejected.to_pylist()[0]["reason"] == "total_not_a_number"

"""Each data-quality rule passes on a good table and catches the fault it exists for."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from hostpms_pipeline.defs.checks import evaluate_webhook_lag
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.engine import quality
from hostpms_pipeline.engine.parsing import ISO_4217_CURRENCIES
from hostpms_pipeline.engine.quality import batch_rules
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.entities.schema import row_schema
from hostpms_pipeline_tests.test_transform import TR2_BOOKING

BOOKING_SCHEMA = row_schema(RESERVATIONS)


def booking(**overrides) -> dict:
    """The TR-2 unified sample as a stored row, with ``overrides``."""
    row = {
        **TR2_BOOKING,
        "id": "6f1d7c1e-0000-5000-8000-000000000001",
        "event_received_at": None,
        "raw_location": "raw/x.json",
        "state_hash": "h",
        "synced_at": datetime(2024, 3, 15, 14, 30, tzinfo=UTC),
    }
    return row | overrides


def table(*rows: dict) -> pa.Table:
    # Nullability is the schema's promise about well-formed batches; the rules must
    # still see nulls, so build without the non-null constraints.
    relaxed = pa.schema([field.with_nullable(True) for field in BOOKING_SCHEMA])
    return pa.Table.from_pylist(list(rows), schema=relaxed)


GOOD = table(booking(), booking(id="6f1d7c1e-0000-5000-8000-000000000002", external_id="RSV-2"))

# The bookings' batch rules by name: the generic ones and the reservation spec's own.
RULES = {rule.name: rule.evaluate for rule in batch_rules(RESERVATIONS)}


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_passes_on_good_bookings(name):
    assert RULES[name](GOOD).passed


BAD_CASES = [
    ("unique_booking_key", table(booking(), booking())),
    ("required_fields", table(booking(status=None))),
    (
        "checkout_after_checkin",
        table(booking(check_out_date=date(2024, 3, 20), length_of_stay=0)),
    ),
    ("stay_and_lead_time_match_dates", table(booking(length_of_stay=4))),
    ("stay_and_lead_time_match_dates", table(booking(lead_time=20))),
    ("currency_is_iso_4217", table(booking(currency="EU"))),
    ("currency_is_iso_4217", table(booking(currency="eur"))),
    ("totals_not_negative", table(booking(total_amount=Decimal("-0.01")))),
    ("mapped_values_known", table(booking(status="unknown", status_original="pendente"))),
    ("iva_consistent_with_country", table(booking(iva_amount=Decimal("50.00")))),
]


def test_every_rule_has_a_bad_case():
    assert {name for name, _ in BAD_CASES} == set(RULES)


@pytest.mark.parametrize("name, bad", BAD_CASES, ids=[name for name, _ in BAD_CASES])
def test_rule_catches_its_fault(name, bad):
    outcome = RULES[name](bad)
    assert not outcome.passed
    assert outcome.failing >= 1


def test_unknown_values_are_counted_by_field_and_original_value():
    bad = table(
        booking(status="unknown", status_original="pendente"),
        booking(id="b", external_id="RSV-2", status="unknown", status_original="pendente"),
        booking(id="c", external_id="RSV-3", channel="unknown", channel_original="telefone"),
    )
    outcome = quality.mapped_values_known(RESERVATIONS, bad)
    assert outcome.metadata["unknown_values"] == {
        "status": {"pendente": 2},
        "channel": {"telefone": 1},
    }


def test_iva_accepts_spanish_rate_included_in_total():
    # 110.00 with 10% IVA included: 10.00 of it is tax.
    spanish = table(
        booking(hotel_id="ES-MAD-001", total_amount=Decimal("110.00"), iva_amount=Decimal("10.00"))
    )
    assert RULES["iva_consistent_with_country"](spanish).passed
    portuguese_rate_in_spain = table(
        booking(hotel_id="ES-MAD-001", total_amount=Decimal("100.00"), iva_amount=Decimal("6.00"))
    )
    assert not RULES["iva_consistent_with_country"](portuguese_rate_in_spain).passed


def test_webhook_lag_check_fails_past_30_seconds_and_ignores_polled_rows():
    keys = entity_keys(RESERVATIONS)
    loaded_at = datetime(2026, 11, 24, 12, 0, 40, tzinfo=UTC)
    received = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)
    polled = booking(
        raw_location="raw/hostpms/PT-LIS-001/polling/x.json", event_received_at=received
    )
    late = booking(id="b", external_id="RSV-2", raw_location="raw/hostpms/PT-LIS-001/webhooks/e/x.json",
                   event_received_at=received)  # fmt: skip
    assert evaluate_webhook_lag(keys, table(polled), loaded_at).passed
    failing = evaluate_webhook_lag(keys, table(polled, late), loaded_at)
    assert not failing.passed
    assert failing.metadata["lag_p95_seconds"].value == 40.0


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_passes_on_an_empty_batch(name):
    # A load with nothing new (e.g. a webhook run whose drops an earlier run took) is not an error.
    assert RULES[name](table()).passed


def test_every_currency_the_transform_accepts_passes_the_check():
    accepted = [booking(id=str(i), external_id=f"RSV-{i}", currency=code)
                for i, code in enumerate(sorted(ISO_4217_CURRENCIES))]  # fmt: skip
    assert RULES["currency_is_iso_4217"](table(*accepted)).passed

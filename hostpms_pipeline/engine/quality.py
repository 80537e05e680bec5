"""Data-quality rules over a table of unified bookings, as pure Arrow functions.

The asset checks in ``checks.py`` run these; keeping them free of Dagster makes
each rule testable on a hand-made table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.engine.booking_schema import BOOKING_KEY, MAPPED_FIELDS, UNKNOWN
from hostpms_pipeline.engine.transform import ISO_4217_CURRENCIES
from hostpms_pipeline.hostpms.contract import property_country

REQUIRED_COLUMNS = (
    "id", "external_id", "source", "hotel_id", "check_in_date", "check_out_date",
    "total_amount", "currency", "status", "channel", "room_type", "source_updated_at",
)  # fmt: skip

# IVA rates a hotel may charge, by country of the property (mainland and islands).
IVA_RATES = {
    "PT": (0.04, 0.05, 0.06, 0.09, 0.12, 0.13, 0.16, 0.22, 0.23),
    "ES": (0.03, 0.04, 0.07, 0.10, 0.21),
}
IVA_TOLERANCE = 0.0101  # a cent, plus float slack: HostPMS rounds each amount to the cent


@dataclass
class RuleResult:
    passed: bool
    failing: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


def _result(failing: int, **metadata: Any) -> RuleResult:
    return RuleResult(failing == 0, failing, {"failing_rows": failing, **metadata})


def unique_key(bookings: pa.Table) -> RuleResult:
    distinct = bookings.group_by(list(BOOKING_KEY)).aggregate([]).num_rows
    ids = pc.count_distinct(bookings["id"]).as_py()
    return _result(bookings.num_rows - min(distinct, ids), rows=bookings.num_rows)


def required_fields(bookings: pa.Table) -> RuleResult:
    nulls = {name: bookings[name].null_count for name in REQUIRED_COLUMNS}
    missing = {name: count for name, count in nulls.items() if count}
    return _result(sum(missing.values()), nulls_by_column=missing)


def checkout_after_checkin(bookings: pa.Table) -> RuleResult:
    bad = pc.less_equal(bookings["check_out_date"], bookings["check_in_date"])
    return _result(pc.sum(bad).as_py() or 0)


def stay_and_lead_time_match_dates(bookings: pa.Table) -> RuleResult:
    nights = pc.days_between(bookings["check_in_date"], bookings["check_out_date"])
    bad_stay = pc.not_equal(nights, pc.cast(bookings["length_of_stay"], pa.int64()))
    booked_day = pc.cast(pc.floor_temporal(bookings["booked_at"], unit="day"), pa.date32())
    lead = pc.days_between(booked_day, bookings["check_in_date"])
    bad_lead = pc.not_equal(lead, pc.cast(bookings["lead_time"], pa.int64()))
    stay_failing = pc.sum(pc.fill_null(bad_stay, True)).as_py() or 0
    lead_failing = pc.sum(pc.fill_null(bad_lead, False)).as_py() or 0
    return _result(stay_failing + lead_failing, length_of_stay_mismatches=stay_failing,
                   lead_time_mismatches=lead_failing)  # fmt: skip


def currency_is_iso_4217(bookings: pa.Table) -> RuleResult:
    # The same list the transform rejects by: a batch it accepted must pass here.
    valid = pc.is_in(bookings["currency"], value_set=pa.array(sorted(ISO_4217_CURRENCIES)))
    bad = bookings.filter(pc.invert(pc.fill_null(valid, False)))["currency"]
    return _result(len(bad), invalid_codes=sorted({str(code) for code in bad.to_pylist()}))


def totals_not_negative(bookings: pa.Table) -> RuleResult:
    negative = pc.less(
        bookings["total_amount"], pa.scalar(Decimal("0"), bookings["total_amount"].type)
    )
    return _result(pc.sum(negative).as_py() or 0)


def mapped_values_known(bookings: pa.Table) -> RuleResult:
    """Counts of ``unknown`` by field and original value (a WARN, never blocking)."""
    unknown: dict[str, dict[str, int]] = {}
    for mapped, original in MAPPED_FIELDS.items():
        rows = bookings.filter(pc.equal(bookings[mapped], UNKNOWN))
        if rows.num_rows:
            counts = pc.value_counts(pc.fill_null(rows[original], "<missing>"))
            unknown[mapped] = {c["values"].as_py(): c["counts"].as_py() for c in counts}
    failing = sum(sum(values.values()) for values in unknown.values())
    return _result(failing, unknown_values=unknown)


def iva_consistent_with_country(bookings: pa.Table) -> RuleResult:
    """IVA is one of the property country's rates, applied to the total (as in TR-2) or included in it."""
    country = _countries(bookings["hotel_id"])
    total = pc.cast(bookings["total_amount"], pa.float64())
    iva = pc.cast(bookings["iva_amount"], pa.float64())
    failing_by_country: dict[str, int] = {}
    for code, rates in IVA_RATES.items():
        in_country = pc.and_(pc.equal(country, code), pc.is_valid(iva))
        matches = pa.array([False] * bookings.num_rows, type=pa.bool_())
        for rate in rates:
            for expected in (pc.multiply(total, rate), pc.multiply(total, rate / (1 + rate))):
                close = pc.less_equal(pc.abs(pc.subtract(iva, expected)), IVA_TOLERANCE)
                matches = pc.or_(matches, pc.fill_null(close, False))
        failing = pc.sum(pc.and_(in_country, pc.invert(matches))).as_py() or 0
        if failing:
            failing_by_country[code] = failing
    return _result(sum(failing_by_country.values()), failing_by_country=failing_by_country)


def _countries(hotel_ids: pa.ChunkedArray) -> pa.Array:
    """Each row's property country, as the contract derives it (few distinct hotels per batch)."""
    hotels = pc.unique(hotel_ids)
    countries = pa.array(
        [property_country(h) if h else None for h in hotels.to_pylist()], pa.string()
    )
    return pc.take(countries, pc.index_in(hotel_ids, value_set=hotels))

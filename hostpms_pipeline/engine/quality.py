"""Data-quality rules over a batch of an entity's rows, as pure Arrow functions.

Every entity gets the generic rules (key unique, required fields present, mapped
values known); its spec adds its own checks (``entities/spec.py``), evaluated
here. The asset checks in ``defs/checks.py`` run these; keeping them free of
Dagster makes each rule testable on a hand-made table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.engine.parsing import CURRENCY_CODES
from hostpms_pipeline.entities.schema import KEY_FIELDS, NATURAL_KEY, UNKNOWN
from hostpms_pipeline.entities.spec import (
    CurrencyCheck,
    DaysBetween,
    DaysCheck,
    EntitySpec,
    IvaCheck,
    Mapped,
    NotNegativeCheck,
    OrderCheck,
    Rule,
    ValidIdentifiersCheck,
    WithinCheck,
)
from hostpms_pipeline.hostpms.contract import property_country

# IVA rates a hotel may charge, by country of the property (mainland and islands).
IVA_RATES = {
    "PT": (0.04, 0.05, 0.06, 0.09, 0.12, 0.13, 0.16, 0.22, 0.23),
    "ES": (0.03, 0.04, 0.07, 0.10, 0.21),
}
IVA_TOLERANCE = 0.0101  # a cent, plus float slack: HostPMS rounds each amount to the cent
EXAMPLES = 10  # ids shown with a failing count


@dataclass
class RuleResult:
    passed: bool
    failing: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


def _result(failing: int, **metadata: Any) -> RuleResult:
    return RuleResult(failing == 0, failing, {"failing_rows": failing, **metadata})


def _count(mask: Any) -> int:
    return pc.sum(mask, min_count=0).as_py() or 0


def _examples(rows: pa.Table, mask: Any) -> list[str]:
    """HostPMS ids (never personal data) of a few failing rows."""
    return rows.filter(pc.fill_null(mask, False))["external_id"].slice(0, EXAMPLES).to_pylist()


# --- Every entity ------------------------------------------------------------------------


def unique_key(spec: EntitySpec, rows: pa.Table) -> RuleResult:
    distinct = rows.group_by(list(NATURAL_KEY)).aggregate([]).num_rows
    ids = pc.count_distinct(rows["id"]).as_py()
    return _result(rows.num_rows - min(distinct, ids), rows=rows.num_rows)


def required_columns(spec: EntitySpec) -> tuple[str, ...]:
    own = (column.name for column in spec.columns if column.required)
    return (*(f.name for f in KEY_FIELDS), *own, "source_updated_at")


def required_fields(spec: EntitySpec, rows: pa.Table) -> RuleResult:
    nulls = {name: rows[name].null_count for name in required_columns(spec)}
    missing = {name: count for name, count in nulls.items() if count}
    return _result(sum(missing.values()), nulls_by_column=missing)


def mapped_values_known(spec: EntitySpec, rows: pa.Table) -> RuleResult:
    """Counts of ``unknown`` by field and original value (a WARN, never blocking)."""
    unknown: dict[str, dict[str, int]] = {}
    for column in spec.columns:
        if not isinstance(column.value, Mapped):
            continue
        unmapped = rows.filter(pc.equal(rows[column.name], UNKNOWN))
        if unmapped.num_rows:
            originals = pc.fill_null(unmapped[f"{column.name}_original"], "<missing>")
            counts = pc.value_counts(originals)
            unknown[column.name] = {c["values"].as_py(): c["counts"].as_py() for c in counts}
    failing = sum(sum(values.values()) for values in unknown.values())
    return _result(failing, unknown_values=unknown)


# --- An entity's own checks ----------------------------------------------------------------


def evaluate(spec: EntitySpec, rule: Rule, rows: pa.Table) -> RuleResult:
    match rule:
        case NotNegativeCheck(columns):
            failing = {}
            for name in columns:
                zero = pa.scalar(Decimal("0"), rows[name].type)
                failing[name] = _count(pc.less(rows[name], zero))
            return _result(sum(failing.values()), negative_by_column=failing)
        case CurrencyCheck(column):
            valid = pc.fill_null(pc.is_in(rows[column], value_set=CURRENCY_CODES), False)
            bad = rows.filter(pc.invert(valid))[column]
            return _result(len(bad), invalid_codes=sorted({str(code) for code in bad.to_pylist()}))
        case WithinCheck(column, values):
            outside = pc.invert(pc.fill_null(pc.is_in(rows[column], pa.array(values)), False))
            return _result(_count(outside), examples=_examples(rows, outside))
        case OrderCheck(later, earlier):
            return _result(_count(pc.less_equal(rows[later], rows[earlier])))
        case DaysCheck(columns):
            return _days_match(spec, columns, rows)
        case IvaCheck(total, iva):
            return _iva_consistent_with_country(rows, total, iva)
        case ValidIdentifiersCheck(columns):
            invalid = {name: _count(pc.invert(rows[name])) for name in columns}
            return _result(sum(invalid.values()), invalid_by_column=invalid)
    raise TypeError(f"not a check rule: {rule!r}")


def _days_match(spec: EntitySpec, columns: tuple[str, ...], rows: pa.Table) -> RuleResult:
    """Each ``DaysBetween`` column equals the days between its dates (null counts as
    a mismatch only where the column is required)."""
    mismatches = {}
    for name in columns:
        column = spec.column(name)
        assert isinstance(column.value, DaysBetween)
        start = rows[column.value.start]
        if pa.types.is_timestamp(start.type):
            start = pc.cast(pc.floor_temporal(start, unit="day"), pa.date32())
        days = pc.days_between(start, rows[column.value.end])
        bad = pc.not_equal(days, pc.cast(rows[name], pa.int64()))
        mismatches[f"{name}_mismatches"] = _count(pc.fill_null(bad, column.required))
    return _result(sum(mismatches.values()), **mismatches)


def _iva_consistent_with_country(rows: pa.Table, total_column: str, iva_column: str) -> RuleResult:
    """IVA is one of the property country's rates, applied to the total (as in TR-2) or included in it."""
    country = _countries(rows["hotel_id"])
    total = pc.cast(rows[total_column], pa.float64())
    iva = pc.cast(rows[iva_column], pa.float64())
    failing_by_country: dict[str, int] = {}
    for code, rates in IVA_RATES.items():
        in_country = pc.and_(pc.equal(country, code), pc.is_valid(iva))
        matches = pa.array([False] * rows.num_rows, type=pa.bool_())
        for rate in rates:
            for expected in (pc.multiply(total, rate), pc.multiply(total, rate / (1 + rate))):
                close = pc.less_equal(pc.abs(pc.subtract(iva, expected)), IVA_TOLERANCE)
                matches = pc.or_(matches, pc.fill_null(close, False))
        failing = _count(pc.and_(in_country, pc.invert(matches)))
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


@dataclass(frozen=True)
class BatchRule:
    name: str
    description: str
    blocking: bool
    evaluate: Callable[[pa.Table], RuleResult]


def batch_rules(spec: EntitySpec) -> list[BatchRule]:
    """Every entity's rules, then the spec's own."""
    rules = [
        BatchRule(
            f"unique_{spec.row}_key",
            "One row per (source, external_id, hotel_id) and per id.",
            True,
            lambda rows: unique_key(spec, rows),
        ),
        BatchRule(
            "required_fields",
            f"Set in every row: {', '.join(required_columns(spec))}.",
            True,
            lambda rows: required_fields(spec, rows),
        ),
    ]
    mapped = [column.name for column in spec.columns if isinstance(column.value, Mapped)]
    if mapped:
        rules.append(
            BatchRule(
                "mapped_values_known",
                f"Every {', '.join(mapped)} is in the mapping tables.",
                False,
                lambda rows: mapped_values_known(spec, rows),
            )
        )
    for check in spec.checks:
        rules.append(
            BatchRule(
                check.name,
                check.description,
                check.blocking,
                lambda rows, rule=check.rule: evaluate(spec, rule, rows),
            )
        )
    return rules

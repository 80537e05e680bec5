"""Asset checks: the rules of ``quality`` applied to each batch, and the warehouse's invariants.

Rules whose failure means bad data would reach PostgreSQL are blocking: the
``bookings`` asset does not run after one fails. Mapping gaps and IVA oddities
are warnings with counts, because the booking is still right to keep. Checks on a
batch are evaluated by the asset that holds it in memory (its ``check_specs``);
checks on the warehouse read PostgreSQL and Parquet themselves.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    asset_check,
)

from hostpms_pipeline.defs.keys import (
    BOOKINGS,
    BOOKINGS_PARQUET,
    DEDUPLICATED_BOOKINGS,
    MAPPED_BOOKINGS,
)
from hostpms_pipeline.defs.resources import ObjectStoreResource, PostgresResource
from hostpms_pipeline.engine import pipeline, quality
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import booking_store, checkpoints

SYNC_LAG_LIMIT = timedelta(hours=2)  # the PRD's "data sync lag" critical alarm

Rule = Callable[[pa.Table], quality.RuleResult]
BLOCKING_RULES: dict[str, tuple[Rule, str]] = {
    "unique_booking_key": (
        quality.unique_key,
        "One row per (source, external_id, hotel_id) and per id.",
    ),
    "required_fields": (
        quality.required_fields,
        "Key, dates, amount, currency and mapped fields are set.",
    ),
    "checkout_after_checkin": (quality.checkout_after_checkin, "Check-out is after check-in."),
    "stay_and_lead_time_match_dates": (
        quality.stay_and_lead_time_match_dates,
        "length_of_stay and lead_time agree with the dates.",
    ),
    "currency_is_iso_4217": (quality.currency_is_iso_4217, "Currency is an ISO 4217 code."),
    "totals_not_negative": (quality.totals_not_negative, "Totals are not negative."),
}
WARNING_RULES: dict[str, tuple[Rule, str]] = {
    "mapped_values_known": (
        quality.mapped_values_known,
        "Every status, channel, room type and rate plan is in the mapping tables.",
    ),
    "iva_consistent_with_country": (
        quality.iva_consistent_with_country,
        "IVA matches a Portuguese or Spanish rate.",
    ),
}


QUALITY_SPECS = [
    AssetCheckSpec(name, asset=DEDUPLICATED_BOOKINGS, description=text, blocking=blocking)
    for rules, blocking in ((BLOCKING_RULES, True), (WARNING_RULES, False))
    for name, (_, text) in rules.items()
]
ACCOUNTED_FOR_SPEC = AssetCheckSpec(
    "every_raw_record_accounted_for",
    asset=MAPPED_BOOKINGS,
    description="Every raw reservation read became a booking or a rejected record.",
    blocking=True,
)


WEBHOOK_LAG_TARGET = timedelta(seconds=30)  # the PRD's data-sync latency for webhooks
WEBHOOK_LAG_SPEC = AssetCheckSpec(
    "webhook_lag_under_30s",
    asset=BOOKINGS,
    description="Bookings from webhook events reached PostgreSQL within 30 s of their receipt (p95).",
)


def webhook_lag_seconds(bookings: pa.Table, loaded_at: datetime) -> list[float]:
    """Receipt-to-PostgreSQL lag of the rows that came from webhook drops."""
    from_webhooks = bookings.filter(pc.match_substring(bookings["raw_location"], "/webhooks/"))
    received = from_webhooks["event_received_at"].to_pylist()
    return sorted((loaded_at - moment).total_seconds() for moment in received if moment)


def evaluate_webhook_lag(bookings: pa.Table, loaded_at: datetime) -> AssetCheckResult:
    lags = webhook_lag_seconds(bookings, loaded_at)
    p95 = lags[min(len(lags) - 1, int(len(lags) * 0.95))] if lags else None
    return AssetCheckResult(
        check_name=WEBHOOK_LAG_SPEC.name,
        asset_key=BOOKINGS,
        passed=p95 is None or p95 <= WEBHOOK_LAG_TARGET.total_seconds(),
        severity=AssetCheckSeverity.WARN,
        metadata={
            "webhook_rows": len(lags),
            "lag_p95_seconds": round(p95, 2) if p95 is not None else "no webhook rows",
            "lag_max_seconds": round(lags[-1], 2) if lags else "no webhook rows",
        },
    )


def evaluate_quality(bookings: pa.Table) -> Iterator[AssetCheckResult]:
    """Results for QUALITY_SPECS, yielded by the asset that holds the batch in memory."""
    for rules, severity in (
        (BLOCKING_RULES, AssetCheckSeverity.ERROR),
        (WARNING_RULES, AssetCheckSeverity.WARN),
    ):
        for name, (rule, _) in rules.items():
            outcome = rule(bookings)
            yield AssetCheckResult(
                check_name=name,
                asset_key=DEDUPLICATED_BOOKINGS,
                passed=outcome.passed,
                severity=severity,
                metadata={key: _metadata(value) for key, value in outcome.metadata.items()},
            )


def _metadata(value: object) -> object:
    return MetadataValue.json(value) if isinstance(value, (dict, list)) else value


def evaluate_accounted_for(batch: pipeline.MappedBatch) -> AssetCheckResult:
    accounted = batch.bookings.num_rows + batch.rejected.num_rows
    return AssetCheckResult(
        check_name=ACCOUNTED_FOR_SPEC.name,
        asset_key=MAPPED_BOOKINGS,
        passed=accounted == batch.raw_count,
        metadata={
            "raw_records": batch.raw_count,
            "bookings": batch.bookings.num_rows,
            "rejected": batch.rejected.num_rows,
        },
    )


@asset_check(
    asset=BOOKINGS_PARQUET,
    additional_deps=[BOOKINGS],
    description="PostgreSQL and the Parquet dataset hold the same bookings (count and key set).",
)
def postgres_matches_parquet(
    postgres: PostgresResource, processed_store: ObjectStoreResource
) -> AssetCheckResult:
    with postgres.connect() as conn:
        in_postgres = booking_store.booking_keys(conn)
    in_parquet = parquet_store.read_bookings(
        processed_store.url, columns=["source", "external_id", "hotel_id"]
    )
    postgres_keys, parquet_keys = pipeline.key_set(in_postgres), pipeline.key_set(in_parquet)
    return AssetCheckResult(
        passed=in_postgres.num_rows == in_parquet.num_rows and postgres_keys == parquet_keys,
        metadata={
            "postgres_rows": in_postgres.num_rows,
            "parquet_rows": in_parquet.num_rows,
            "only_in_postgres": len(postgres_keys - parquet_keys),
            "only_in_parquet": len(parquet_keys - postgres_keys),
        },
    )


@asset_check(
    asset=BOOKINGS,
    description="No property's data is older than 2 hours (the PRD's sync-lag alarm).",
)
def every_property_synced_recently(
    context: AssetCheckExecutionContext, postgres: PostgresResource
) -> AssetCheckResult:
    with postgres.connect() as conn:
        last_sync = checkpoints.last_sync_times(conn, "reservations")
    now = datetime.now(UTC)
    lag = {
        property_id: (now - last_sync[property_id]).total_seconds() / 60
        if property_id in last_sync
        else None
        for property_id in get_settings().property_ids
    }
    stale = [
        p
        for p, minutes in lag.items()
        if minutes is None or minutes > SYNC_LAG_LIMIT.total_seconds() / 60
    ]
    return AssetCheckResult(
        passed=not stale,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "lag_minutes_by_property": MetadataValue.json(
                {p: round(m, 1) if m is not None else "never synced" for p, m in lag.items()}
            ),
            "stale_properties": MetadataValue.json(stale),
        },
    )


pipeline_checks = [
    postgres_matches_parquet,
    every_property_synced_recently,
]

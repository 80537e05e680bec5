"""Asset checks: each entity's batch rules (``engine.quality``) and the warehouse's invariants.

Rules whose failure means bad data would reach PostgreSQL are blocking: the
entity's load does not run after one fails. Mapping gaps, IVA oddities and
identifiers that fail validation are warnings with counts, because the row is
still right to keep. Checks on a batch are evaluated by the asset that holds it
in memory (its ``check_specs``); checks on the warehouse read PostgreSQL and
Parquet themselves.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    asset_check,
)

from hostpms_pipeline.defs.keys import EntityKeys, entity_keys
from hostpms_pipeline.defs.resources import ObjectStoreResource, PostgresResource
from hostpms_pipeline.engine import pipeline, quality
from hostpms_pipeline.entities import BY_COLLECTION
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.lake import parquet_store, raw_integrity
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import checkpoints, entity_store, properties

SYNC_LAG_LIMIT = timedelta(hours=2)  # the PRD's "data sync lag" critical alarm
WEBHOOK_LAG_TARGET = timedelta(seconds=30)  # the PRD's data-sync latency for webhooks
ACCOUNTED_FOR = "every_raw_record_accounted_for"
WEBHOOK_LAG = "webhook_lag_under_30s"


def batch_check_specs(spec: EntitySpec) -> list[AssetCheckSpec]:
    asset = entity_keys(spec).deduplicated
    return [
        AssetCheckSpec(rule.name, asset=asset, description=rule.description, blocking=rule.blocking)
        for rule in quality.batch_rules(spec)
    ]


def evaluate_batch(spec: EntitySpec, rows: pa.Table) -> Iterator[AssetCheckResult]:
    """Results for ``batch_check_specs``, yielded by the asset that holds the batch in memory."""
    for rule in quality.batch_rules(spec):
        outcome = rule.evaluate(rows)
        yield AssetCheckResult(
            check_name=rule.name,
            asset_key=entity_keys(spec).deduplicated,
            passed=outcome.passed,
            severity=AssetCheckSeverity.ERROR if rule.blocking else AssetCheckSeverity.WARN,
            metadata={key: _metadata(value) for key, value in outcome.metadata.items()},
        )


def _metadata(value: object) -> object:
    return MetadataValue.json(value) if isinstance(value, (dict, list)) else value


def accounted_for_spec(keys: EntityKeys, spec: EntitySpec) -> AssetCheckSpec:
    return AssetCheckSpec(
        ACCOUNTED_FOR,
        asset=keys.mapped,
        description=f"Every raw {spec.collection} record read became a row or a rejected record.",
        blocking=True,
    )


def evaluate_accounted_for(keys: EntityKeys, batch: pipeline.MappedBatch) -> AssetCheckResult:
    accounted = batch.rows.num_rows + batch.rejected.num_rows
    return AssetCheckResult(
        check_name=ACCOUNTED_FOR,
        asset_key=keys.mapped,
        passed=accounted == batch.raw_count,
        metadata={
            "raw_records": batch.raw_count,
            "rows": batch.rows.num_rows,
            "rejected": batch.rejected.num_rows,
        },
    )


def webhook_lag_spec(keys: EntityKeys) -> AssetCheckSpec:
    return AssetCheckSpec(
        WEBHOOK_LAG,
        asset=keys.table,
        description="Rows from webhook events reached PostgreSQL within 30 s of their receipt (p95).",
    )


def webhook_lag_seconds(rows: pa.Table, loaded_at: datetime) -> list[float]:
    """Receipt-to-PostgreSQL lag of the rows that came from webhook drops."""
    from_webhooks = rows.filter(pc.match_substring(rows["raw_location"], "/webhooks/"))
    received = from_webhooks["event_received_at"].to_pylist()
    return sorted((loaded_at - moment).total_seconds() for moment in received if moment)


def evaluate_webhook_lag(keys: EntityKeys, rows: pa.Table, loaded_at: datetime) -> AssetCheckResult:
    lags = webhook_lag_seconds(rows, loaded_at)
    p95 = lags[min(len(lags) - 1, int(len(lags) * 0.95))] if lags else None
    return AssetCheckResult(
        check_name=WEBHOOK_LAG,
        asset_key=keys.table,
        passed=p95 is None or p95 <= WEBHOOK_LAG_TARGET.total_seconds(),
        severity=AssetCheckSeverity.WARN,
        metadata={
            "webhook_rows": len(lags),
            "lag_p95_seconds": round(p95, 2) if p95 is not None else "no webhook rows",
            "lag_max_seconds": round(lags[-1], 2) if lags else "no webhook rows",
        },
    )


# --- Checks that read the warehouse ------------------------------------------------------


def warehouse_checks(spec: EntitySpec) -> list[AssetChecksDefinition]:
    keys = entity_keys(spec)

    @asset_check(
        asset=keys.parquet,
        name="postgres_matches_parquet",
        additional_deps=[keys.table],
        description=f"PostgreSQL and Parquet hold the same {spec.table} (count and key set).",
    )
    def postgres_matches_parquet(
        postgres: PostgresResource, processed_store: ObjectStoreResource
    ) -> AssetCheckResult:
        with postgres.connect() as conn:
            in_postgres = entity_store.stored_keys(conn, spec)
        key = ["source", "external_id", "hotel_id"]
        in_parquet = parquet_store.read_rows(processed_store.url, spec, columns=key)
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
        asset=keys.table,
        name="every_property_synced_recently",
        description=f"No property's {spec.collection} are older than 2 hours (the PRD's sync-lag alarm).",
    )
    def every_property_synced_recently(postgres: PostgresResource) -> AssetCheckResult:
        with postgres.connect() as conn:
            last_sync = checkpoints.last_sync_times(conn, spec.collection)
            active = properties.active_property_ids(conn, get_settings().property_ids)
        now = datetime.now(UTC)
        limit = SYNC_LAG_LIMIT.total_seconds() / 60
        lag = {
            property_id: (now - last_sync[property_id]).total_seconds() / 60
            if property_id in last_sync
            else None
            for property_id in active
        }
        stale = [p for p, minutes in lag.items() if minutes is None or minutes > limit]
        shown = {p: round(m, 1) if m is not None else "never synced" for p, m in lag.items()}
        return AssetCheckResult(
            passed=not stale,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "lag_minutes_by_property": MetadataValue.json(shown),
                "stale_properties": MetadataValue.json(stale),
            },
        )

    @asset_check(
        asset=keys.mapped,
        name="raw_files_intact",
        description=(
            f"No raw {spec.collection} file is set aside as unreadable (missing, changed since "
            "it landed, or not a HostPMS page). Each one is listed with its reason; "
            "`hostpms refetch PROPERTY_ID` fetches its window again."
        ),
    )
    def raw_files_intact(
        context: AssetCheckExecutionContext, postgres: PostgresResource
    ) -> AssetCheckResult:
        with postgres.connect() as conn:
            entries = raw_integrity.open_entries(conn, collection=spec.collection)
        for entry in entries:
            context.log.warning(raw_integrity.set_aside_line(entry))
        files = [
            {"property_id": e.property_id, "location": e.location, "reason": e.reason}
            for e in entries[:50]
        ]
        return AssetCheckResult(
            passed=not entries,
            severity=AssetCheckSeverity.WARN,
            metadata={"set_aside": len(entries), "files": MetadataValue.json(files)},
        )

    checks = [postgres_matches_parquet, every_property_synced_recently, raw_files_intact]
    for reference in spec.references:
        checks.append(_reference_check(spec, keys, reference.column, reference.collection))
    return checks


def _reference_check(
    spec: EntitySpec, keys: EntityKeys, column: str, collection: str
) -> AssetChecksDefinition:
    target = BY_COLLECTION[collection]

    @asset_check(
        asset=keys.table,
        name=f"{column}_known",
        additional_deps=[entity_keys(target).table],
        description=f"Every {spec.row}'s {column} names a stored {target.row} (a warning).",
    )
    def reference_known(postgres: PostgresResource) -> AssetCheckResult:
        with postgres.connect() as conn:
            count, examples = entity_store.unknown_references(conn, spec, column, target)
        return AssetCheckResult(
            passed=count == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={"unknown": count, "examples": MetadataValue.json(examples)},
        )

    return reference_known

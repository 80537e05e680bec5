"""Properties in Dagster: the property dimension kept in step with the registry, and each
property's status (``hostpms status``) as a check with its facts as metadata."""

from datetime import UTC, datetime

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    DefaultSensorStatus,
    MetadataValue,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset_check,
    sensor,
)

from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import PROPERTIES_PARTITIONS_NAME, reconcile_requests
from hostpms_pipeline.defs.resources import PostgresResource
from hostpms_pipeline.entities import RESERVATIONS
from hostpms_pipeline.operations import status
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import properties


@sensor(
    name="hostpms_property_partitions",
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Keeps the property dimension of the partitions in step with HOSTPMS_PROPERTY_IDS and "
        "the properties connected or disconnected with `hostpms connect` / `disconnect`."
    ),
)
def hostpms_property_partitions(context: SensorEvaluationContext, postgres: PostgresResource):
    with postgres.connect() as conn:
        active = properties.active_property_ids(conn, get_settings().property_ids)
        disconnected = properties.disconnected_ids(conn)
    known = context.instance.get_dynamic_partitions(PROPERTIES_PARTITIONS_NAME)
    requests = reconcile_requests(known, active, disconnected)
    if not requests:
        return SkipReason(f"{len(active)} properties, all registered")
    return SensorResult(dynamic_partitions_requests=requests)


@asset_check(
    asset=entity_keys(RESERVATIONS).table,
    name="properties_healthy",
    description=(
        "Each property's sync status, as `hostpms status` shows it: last successful sync, lag, "
        "records in 24 h, consecutive failures, unknown values, rejects, webhooks by outcome, "
        "subscription. Fails (a warning) for a property never synced, over 2 h behind, with 3 "
        "failed runs in a row, or whose webhook subscription failed."
    ),
)
def properties_healthy(
    context: AssetCheckExecutionContext, postgres: PostgresResource
) -> AssetCheckResult:
    now = datetime.now(UTC)
    with postgres.connect() as conn:
        statuses = status.collect(conn, context.instance, get_settings().property_ids, now)
    troubled = {s.property_id: s.problems for s in statuses if s.problems}
    rows = [
        "| property | state | last sync | lag (min) | failures | rejects | unknown | webhooks 24 h |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in statuses:
        lag = f"{s.lag_seconds / 60:.0f}" if s.lag_seconds is not None else "-"
        last = s.last_sync_at.strftime("%Y-%m-%d %H:%M") if s.last_sync_at else "never"
        webhooks = ", ".join(f"{k} {v}" for k, v in s.webhooks_24h.items()) or "none"
        rows.append(
            f"| {s.property_id} | {s.state} | {last} | {lag} | {s.consecutive_failures} "
            f"| {sum(s.rejects.values())} | {sum(s.unknown_values.values())} | {webhooks} |"
        )
    return AssetCheckResult(
        passed=not troubled,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "status": MetadataValue.md("\n".join(rows)),
            "properties": MetadataValue.json([s.to_json() for s in statuses]),
            "problems": MetadataValue.json(troubled),
        },
    )

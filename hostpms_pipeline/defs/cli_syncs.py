"""What ``hostpms sync`` did, shown and alerted on as a run would be.

The command runs no Dagster run (``hostpms_pipeline/sync``): it writes a row per property
to ``sync_reports``, and this sensor, in the daemon, reports runless materializations of
the property's live partition for each asset of the chain (row counts as the UI shows
them) and the months a first pass covered (``defs/coverage.py``), and sends the failure
alert for a failed sync as ``hostpms_sync_failure_alert`` does for a failed run. The
command itself never waits on Dagster's storage.
"""

from __future__ import annotations

from dagster import (
    AssetMaterialization,
    DefaultSensorStatus,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from hostpms_pipeline.defs import alerts
from hostpms_pipeline.defs.coverage import history_materializations
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import live_partition_key, register_properties
from hostpms_pipeline.defs.resources import (
    NotifierResource,
    ObjectStoreResource,
    PostgresResource,
)
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import entity_store, sync_reports

REPORTS_PER_TICK = 200
REPORTS_KEPT_DAYS = 7  # after they are shown: the failures `hostpms status` counts back
SPECS = {spec.collection: spec for spec in ENTITIES}


@sensor(
    name="hostpms_cli_syncs",
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
    description=(
        "Shows what `hostpms sync` loaded (it runs no Dagster run): materializations of the "
        "property's live partition and of the months its first pass covered; alerts on a "
        "failed `hostpms sync` as on a failed run."
    ),
)
def hostpms_cli_syncs(
    context: SensorEvaluationContext,
    postgres: PostgresResource,
    processed_store: ObjectStoreResource,
    notifier: NotifierResource,
):
    last = int(context.cursor or 0)
    with postgres.connect() as conn:
        reports = sync_reports.after(conn, last, REPORTS_PER_TICK)
        if not reports:
            return SkipReason(f"no `hostpms sync` since report {last}")
        register_properties(context.instance, (report.property_id for report in reports))
        loaded = {collection for report in reports for collection in report.loaded}
        row_counts = {c: entity_store.row_counts(conn, SPECS[c]) for c in loaded}
        parquet_rows = {
            c: parquet_store.dataset_summary(processed_store.url, SPECS[c]).row_count
            for c in loaded
        }
        events: list[AssetMaterialization] = []
        for report in reports:
            if not report.succeeded:
                _alert(context, conn, notifier, report)
            for collection, counts in report.loaded.items():
                spec = SPECS[collection]
                # The live partition last: it is the asset's latest materialization in the UI.
                events += history_materializations(
                    conn, context.instance, get_settings(), spec, report.property_id
                )
                events += _live_partition(
                    report, collection, counts, row_counts[collection], parquet_rows[collection]
                )
        sync_reports.forget_reported(conn, last, REPORTS_KEPT_DAYS)
    return SensorResult(asset_events=events, cursor=str(reports[-1].id))


def _alert(context, conn, notifier: NotifierResource, report: sync_reports.SyncReport) -> None:
    cli = sync_reports.outcomes(  # as it stood when this sync failed
        conn, report.property_id, alerts.FAILURES_LOOKED_AT, until=report.finished_at
    )
    failures = alerts.consecutive_failures(context.instance, report.property_id, PROPERTY_TAG, cli)
    alert = alerts.failure_alert(
        report.property_id, max(failures, 1), "hostpms sync", report.problem
    )
    context.log.warning(alert.text())
    notifier.notifier().notify(alert)


def _live_partition(
    report: sync_reports.SyncReport,
    collection: str,
    counts: dict[str, int],
    by_hotel: dict[str, int],
    parquet_rows: int,
) -> list[AssetMaterialization]:
    keys = entity_keys(SPECS[collection])
    partition = live_partition_key(report.property_id, report.finished_at)
    common = {"synced_by": "hostpms sync", "finished_at": report.finished_at.isoformat()}

    def materialization(key, **metadata) -> AssetMaterialization:
        return AssetMaterialization(key, partition=partition, metadata={**common, **metadata})

    return [
        materialization(keys.raw, records_landed=counts["records_landed"]),
        materialization(
            keys.mapped, rows_mapped=counts["rows_mapped"], rejected=counts["rejected"]
        ),
        materialization(keys.deduplicated, rows_out=counts["rows_mapped"]),
        materialization(
            keys.table,
            **{
                "dagster/row_count": sum(by_hotel.values()),
                "property_rows": by_hotel.get(report.property_id, 0),
                "inserted": counts["inserted"],
                "versions_bumped": counts["versions_bumped"],
            },
        ),
        materialization(keys.parquet, **{"dagster/row_count": parquet_rows}),
    ]

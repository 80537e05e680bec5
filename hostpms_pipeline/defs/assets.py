"""Software-defined assets: raw_reservations → mapped_bookings → deduplicated_bookings → bookings (PostgreSQL) and bookings_parquet.

Each asset is a thin shell over ``landing`` and ``pipeline`` (which the CLI and
the benchmarks call too) that adds what a person sees in the UI.
"""

import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    Config,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
)
from pydantic import Field

from hostpms_pipeline.defs.checks import (
    ACCOUNTED_FOR_SPEC,
    QUALITY_SPECS,
    WEBHOOK_LAG_SPEC,
    evaluate_accounted_for,
    evaluate_quality,
    evaluate_webhook_lag,
)
from hostpms_pipeline.defs.keys import (
    BOOKINGS,
    BOOKINGS_PARQUET,
    DEDUPLICATED_BOOKINGS,
    MAPPED_BOOKINGS,
    RAW_RESERVATIONS,
)
from hostpms_pipeline.defs.partitions import property_month_partitions, sync_scope
from hostpms_pipeline.defs.resources import HostPMSResource, ObjectStoreResource, PostgresResource
from hostpms_pipeline.defs.step_errors import (
    fail_or_retry,
    one_sync_per_property,
    sync_retry_policy,
)
from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.ingest import polling, webhook_discovery
from hostpms_pipeline.lake import parquet_delta
from hostpms_pipeline.settings import get_settings

# 503 and transient failures are retried by Dagster, later, from the checkpoint, within
# HOSTPMS_MAX_RETRY_WAIT_SECONDS in all; configuration errors fail at once (step_errors).
SYNC_RETRY_POLICY = sync_retry_policy()
# Batches hold guest data: they pass from step to step in memory and are never
# pickled to the Dagster instance's storage (a sync job runs in one process).
BATCH_IO_MANAGER = "batch_io_manager"
PREVIEW_ROWS = 10
PREVIEW_COLUMNS = [
    "external_id", "hotel_id", "check_in_date", "check_out_date", "total_amount",
    "currency", "status", "channel", "room_type", "version",
]  # fmt: skip


def _preview(table: pa.Table) -> MetadataValue:
    head = table.select([c for c in PREVIEW_COLUMNS if c in table.column_names]).slice(
        0, PREVIEW_ROWS
    )
    return MetadataValue.md(
        head.to_pandas().to_markdown(index=False) if head.num_rows else "_no rows_"
    )


class RawReservationsConfig(Config):
    full_resync: bool = Field(
        default=False,
        description="Forget the property's checkpoint first and re-read its whole history "
        "(live partition only; repeats are absorbed by dedup).",
    )


@asset(
    key=RAW_RESERVATIONS,
    group_name="hostpms_ingest",
    partitions_def=property_month_partitions,
    retry_policy=SYNC_RETRY_POLICY,
    kinds={"python", "s3"},
    description="Reservation pages polled from HostPMS, landed as JSON in the raw bucket.",
)
def raw_reservations(
    context: AssetExecutionContext,
    config: RawReservationsConfig,
    hostpms: HostPMSResource,
    raw_store: ObjectStoreResource,
    postgres: PostgresResource,
) -> MaterializeResult:
    scope = sync_scope(context.partition_key)
    started = time.monotonic()

    def progress(page: polling.FetchedPage) -> None:
        context.log.info(f"{scope.property_id}: landed a page of {len(page.records)} reservations")

    with fail_or_retry(context, scope.property_id):  # hardening: one line, bounded retries
        store = raw_store.open()
        lock = one_sync_per_property(postgres.connect, scope.property_id)  # hardening: lock
        with lock, hostpms.client(scope.property_id) as client:
            if config.full_resync and scope.is_live() and context.retry_number == 0:
                polling.reset_for_full_resync(postgres.connect, scope.property_id)
            if scope.is_live():
                result = polling.sync_incremental(
                    client, store, postgres.connect, scope.property_id, progress=progress
                )
            else:
                result = polling.sync_window(
                    client, store, postgres.connect, scope.property_id,
                    scope.window_start, scope.window_end, progress=progress,
                )  # fmt: skip
    return MaterializeResult(
        metadata={
            "mode": "incremental" if scope.is_live() else "window",
            "pages": result.pages,
            "dagster/row_count": result.records,
            "watermark": str(result.watermark) if result.watermark else "none",
            "duration_seconds": round(time.monotonic() - started, 2),
        }
    )


@asset(
    key=MAPPED_BOOKINGS,
    deps=[RAW_RESERVATIONS],
    group_name="hostpms_transform",
    partitions_def=property_month_partitions,
    kinds={"python", "pyarrow"},
    io_manager_key=BATCH_IO_MANAGER,
    check_specs=[ACCOUNTED_FOR_SPEC],
    description=(
        "Every landed raw reservation not yet loaded, mapped from Portuguese/Spanish to the "
        "unified booking; records that cannot be bookings are set aside with their reason."
    ),
)
def mapped_bookings(
    context: AssetExecutionContext, raw_store: ObjectStoreResource, postgres: PostgresResource
):
    scope = sync_scope(context.partition_key)
    started = time.monotonic()
    with fail_or_retry(context, scope.property_id, retryable=False):  # hardening
        store = raw_store.open()
        with postgres.connect() as conn:
            webhook_discovery.catch_up(store, conn, scope.property_id)
            raw = pipeline.read_pending(
                store, conn, scope.property_id, get_settings().max_records_per_run
            )
        batch = pipeline.map_batch(raw, load_mapping_tables(get_settings().mapping_file))
    if raw.left_pending:
        context.log.info(f"{raw.left_pending} raw file(s) left pending for the next run")
    yield Output(
        batch,
        metadata={
            "raw_files": len(batch.locations),
            "raw_files_left_pending": raw.left_pending,
            "rows_in": batch.raw_count,
            "dagster/row_count": batch.bookings.num_rows,
            "rejected": batch.rejected.num_rows,
            "rejects_by_reason": MetadataValue.json(batch.rejects_by_reason()),
            "unknown_values": MetadataValue.json(batch.unknown_values()),
            "duration_seconds": round(time.monotonic() - started, 2),
        },
    )
    yield evaluate_accounted_for(batch)


@asset(
    key=DEDUPLICATED_BOOKINGS,
    ins={"mapped_bookings": AssetIn(MAPPED_BOOKINGS)},
    group_name="hostpms_transform",
    partitions_def=property_month_partitions,
    kinds={"python", "pyarrow"},
    io_manager_key=BATCH_IO_MANAGER,
    check_specs=QUALITY_SPECS,
    description="One row per (source, external_id, hotel_id): the latest updated_at wins.",
)
def deduplicated_bookings(context: AssetExecutionContext, mapped_bookings: pipeline.MappedBatch):
    started = time.monotonic()
    batch = pipeline.deduplicate(mapped_bookings)
    yield Output(
        batch,
        metadata={
            "rows_in": mapped_bookings.bookings.num_rows,
            "dagster/row_count": batch.bookings.num_rows,
            "duplicates_dropped": mapped_bookings.bookings.num_rows - batch.bookings.num_rows,
            "preview": _preview(batch.bookings),
            "duration_seconds": round(time.monotonic() - started, 2),
        },
    )
    yield from evaluate_quality(batch.bookings)


@asset(
    key=BOOKINGS,
    ins={"deduplicated_bookings": AssetIn(DEDUPLICATED_BOOKINGS)},
    group_name="hostpms_warehouse",
    partitions_def=property_month_partitions,
    kinds={"postgres"},
    freshness_policy=FreshnessPolicy.time_window(fail_window=timedelta(hours=2)),
    check_specs=[WEBHOOK_LAG_SPEC],
    description="The unified bookings table in PostgreSQL (upsert: a newer state only).",
)
def bookings(
    context: AssetExecutionContext,
    deduplicated_bookings: pipeline.MappedBatch,
    postgres: PostgresResource,
) -> MaterializeResult:
    started = time.monotonic()
    delta = parquet_delta.hand_over(_run_step_key(context))  # for bookings_parquet
    try:
        with (
            fail_or_retry(context, sync_scope(context.partition_key).property_id, retryable=False),
            postgres.connect() as conn,
        ):  # hardening: fail_or_retry
            result = pipeline.load_postgres(conn, deduplicated_bookings, delta)
    except BaseException:
        delta.close()
        parquet_delta.take_over(_run_step_key(context))
        raise
    stats = result.stats
    return MaterializeResult(
        check_results=[evaluate_webhook_lag(deduplicated_bookings.bookings, datetime.now(UTC))],
        metadata={
            "inserted": stats.inserted,
            "versions_bumped": stats.updated,
            "unchanged": stats.unchanged,
            "older_state_ignored": stats.stale,
            "rejected_written": result.rejected_written,
            "raw_files_processed": result.files_processed,
            "dagster/row_count": stats.inserted + stats.updated,
            "duration_seconds": round(time.monotonic() - started, 2),
        },
    )


@asset(
    key=BOOKINGS_PARQUET,
    deps=[BOOKINGS],
    group_name="hostpms_warehouse",
    partitions_def=property_month_partitions,
    kinds={"parquet", "s3"},
    description=(
        "bookings as Parquet at {processed}/bookings/source=hostpms/year=/month=/day=, by the "
        "booking's own date; each run rewrites only the day partitions it touched."
    ),
)
def bookings_parquet(
    context: AssetExecutionContext,
    postgres: PostgresResource,
    processed_store: ObjectStoreResource,
) -> MaterializeResult:
    started = time.monotonic()
    delta = parquet_delta.take_over(_run_step_key(context))  # the rows the bookings step wrote
    try:
        with (
            fail_or_retry(context, sync_scope(context.partition_key).property_id, retryable=False),
            postgres.connect() as conn,
        ):  # hardening: fail_or_retry
            exported = pipeline.export_parquet(conn, processed_store.url, delta=delta)
    finally:
        if delta is not None:
            delta.close()
    return MaterializeResult(
        metadata={
            "partitions_rewritten": exported.partitions,
            "partitions_merged_from_this_run": exported.merged,
            "rows_written": exported.rows,
            "exported_at": datetime.now(UTC).isoformat(),
            "duration_seconds": round(time.monotonic() - started, 2),
        }
    )


def _run_step_key(context: AssetExecutionContext) -> str:
    return f"{context.run_id}/{context.partition_key}"


pipeline_assets = [
    raw_reservations,
    mapped_bookings,
    deduplicated_bookings,
    bookings,
    bookings_parquet,
]

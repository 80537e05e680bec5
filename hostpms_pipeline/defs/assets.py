"""Each entity's asset chain, made from its spec by one factory:

raw_{collection} → mapped_{table} → deduplicated_{table} → {table} (PostgreSQL) and {table}_parquet

Each asset is a thin shell over ``ingest`` and ``engine.pipeline`` (which the CLI
and the benchmarks call too) that adds what a person sees in the UI. Every
entity is its own group.
"""

import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetsDefinition,
    AssetSpec,
    Config,
    FreshnessPolicy,
    MaterializeResult,
    MetadataValue,
    MultiPartitionsDefinition,
    Output,
    asset,
    multi_asset,
)
from pydantic import Field

from hostpms_pipeline import progress as live_progress
from hostpms_pipeline.defs import checks, coverage
from hostpms_pipeline.defs.engine_resource import EngineResource
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import sync_scope
from hostpms_pipeline.defs.resources import HostPMSResource, ObjectStoreResource, PostgresResource
from hostpms_pipeline.defs.step_errors import (
    fail_or_retry,
    one_sync_per_property,
    sync_retry_policy,
)
from hostpms_pipeline.engine import pipeline
from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.hostpms.client import FetchedPage
from hostpms_pipeline.ingest import polling, webhook_discovery
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.lake.parquet_delta import ParquetDelta
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import entity_store

# 503 and transient failures are retried by Dagster, later, from the checkpoint, within
# HOSTPMS_MAX_RETRY_WAIT_SECONDS in all; configuration errors fail at once (step_errors).
SYNC_RETRY_POLICY = sync_retry_policy()
# Batches hold guest data: they pass from step to step in memory and are never
# pickled to the Dagster instance's storage (a sync job runs in one process).
BATCH_IO_MANAGER = "batch_io_manager"
PREVIEW_ROWS = 10
PROGRESS_EVERY_SECONDS = 5.0


def _preview(spec: EntitySpec, table: pa.Table) -> MetadataValue:
    """A few rows, in the spec's preview columns: never personal data."""
    columns = [c for c in spec.preview if c in table.column_names]
    head = table.select(columns).slice(0, PREVIEW_ROWS)
    text = head.to_pandas().to_markdown(index=False) if head.num_rows else "_no rows_"
    return MetadataValue.md(text)


def _stored_rows(conn, spec: EntitySpec, property_id: str) -> dict[str, int]:
    """The table's total is its row count (the UI's "Row count"); a run's batch has its own keys."""
    by_hotel = entity_store.row_counts(conn, spec)
    return {
        "dagster/row_count": sum(by_hotel.values()),
        "property_rows": by_hotel.get(property_id, 0),
    }


class RawConfig(Config):
    full_resync: bool = Field(
        default=False,
        description="Forget the property's checkpoint first and re-read its whole history "
        "(live partition only; repeats are absorbed by dedup).",
    )


def entity_assets(
    spec: EntitySpec, partitions: MultiPartitionsDefinition
) -> list[AssetsDefinition]:
    """The chain of assets that carries ``spec``'s collection from HostPMS to PostgreSQL and Parquet."""
    keys = entity_keys(spec)
    what = spec.collection

    @asset(
        key=keys.raw,
        group_name=keys.group,
        partitions_def=partitions,
        retry_policy=SYNC_RETRY_POLICY,
        kinds={"python", "s3"},
        description=f"{what.capitalize()} pages polled from HostPMS, landed as JSON in the raw bucket.",
    )
    def raw(
        context: AssetExecutionContext,
        config: RawConfig,
        hostpms: HostPMSResource,
        raw_store: ObjectStoreResource,
        postgres: PostgresResource,
    ) -> MaterializeResult:
        scope = sync_scope(context.partition_key)
        started = time.monotonic()

        landed = {"pages": 0, "records": 0, "said": 0.0}

        def progress(page: FetchedPage) -> None:
            # A line every few seconds: each one is an event in the instance's storage.
            landed["pages"] += 1
            landed["records"] += page.record_count
            if time.monotonic() - landed["said"] >= PROGRESS_EVERY_SECONDS:
                landed["said"] = time.monotonic()
                context.log.info(
                    f"{scope.property_id}: landed {landed['pages']} page(s), "
                    f"{landed['records']} {what}"
                )
            live_progress.page_landed(scope.property_id, what, page.record_count)

        # Configuration errors fail at once in one line; transient ones retry, announced.
        with fail_or_retry(context, scope.property_id):
            store = raw_store.open()
            lock = one_sync_per_property(postgres.connect, scope.property_id)
            with lock, hostpms.client(scope.property_id) as client:
                if config.full_resync and scope.is_live() and context.retry_number == 0:
                    polling.reset_for_full_resync(postgres.connect, scope.property_id, what)
                if scope.is_live():
                    result = polling.sync_incremental(
                        client, store, postgres.connect, scope.property_id, what, progress=progress
                    )
                else:
                    result = polling.sync_window(
                        client, store, postgres.connect, scope.property_id,
                        scope.window_start, scope.window_end, what, progress=progress,
                    )  # fmt: skip
        return MaterializeResult(
            metadata={
                "mode": "incremental" if scope.is_live() else "window",
                "pages": result.pages,
                "records_landed": result.records,
                "watermark": str(result.watermark) if result.watermark else "none",
                "duration_seconds": round(time.monotonic() - started, 2),
            }
        )

    @asset(
        key=keys.mapped,
        deps=[keys.raw],
        group_name=keys.group,
        partitions_def=partitions,
        kinds={"python", "pyarrow"},
        io_manager_key=BATCH_IO_MANAGER,
        check_specs=[checks.accounted_for_spec(keys, spec)],
        description=(
            f"Every landed raw {spec.row} record not yet loaded (polled or from webhooks), mapped "
            f"to the unified {spec.row}; records that cannot be one are set aside with their reason."
        ),
    )
    def mapped(
        context: AssetExecutionContext,
        raw_store: ObjectStoreResource,
        postgres: PostgresResource,
        engine: EngineResource,
    ):
        scope = sync_scope(context.partition_key)
        started = time.monotonic()
        settings = get_settings()
        with fail_or_retry(context, scope.property_id, retryable=False):
            store = raw_store.open()
            with postgres.connect() as conn:
                webhook_discovery.catch_up(store, conn, scope.property_id, spec)
                raw = pipeline.read_pending(
                    spec, store, conn, scope.property_id, settings.max_records_per_run
                )
            batch = engine.engine().map_batch(raw, load_mapping_tables(settings.mapping_file))
        if raw.left_pending:
            context.log.info(f"{raw.left_pending} raw {what} file(s) left pending for the next run")
        yield Output(
            batch,
            metadata={
                "raw_files": len(batch.locations),
                "raw_files_left_pending": raw.left_pending,
                "rows_in": batch.raw_count,
                "rows_mapped": batch.rows.num_rows,
                "rejected": batch.rejected.num_rows,
                "rejects_by_reason": MetadataValue.json(batch.rejects_by_reason()),
                "unknown_values": MetadataValue.json(batch.unknown_values()),
                "duration_seconds": round(time.monotonic() - started, 2),
            },
        )
        yield checks.evaluate_accounted_for(keys, batch)

    @asset(
        key=keys.deduplicated,
        ins={"mapped": AssetIn(keys.mapped)},
        group_name=keys.group,
        partitions_def=partitions,
        kinds={"python", "pyarrow"},
        io_manager_key=BATCH_IO_MANAGER,
        check_specs=checks.batch_check_specs(spec),
        description=f"One {spec.row} per (source, external_id, hotel_id): the latest updated_at wins.",
    )
    def deduplicated(
        context: AssetExecutionContext, mapped: pipeline.MappedBatch, engine: EngineResource
    ):
        started = time.monotonic()
        batch = engine.engine().deduplicate(mapped)
        yield Output(
            batch,
            metadata={
                "rows_in": mapped.rows.num_rows,
                "rows_out": batch.rows.num_rows,
                "duplicates_dropped": mapped.rows.num_rows - batch.rows.num_rows,
                "preview": _preview(spec, batch.rows),
                "duration_seconds": round(time.monotonic() - started, 2),
            },
        )
        yield from checks.evaluate_batch(spec, batch.rows)

    @multi_asset(
        name=f"load_{spec.table}",
        specs=[
            AssetSpec(
                keys.table,
                deps=[keys.deduplicated],
                group_name=keys.group,
                kinds={"postgres"},
                freshness_policy=FreshnessPolicy.time_window(fail_window=timedelta(hours=2)),
                description=f"The {spec.table} table in PostgreSQL (upsert: a newer state only).",
            ),
            AssetSpec(
                keys.parquet,
                deps=[keys.table],
                group_name=keys.group,
                kinds={"parquet", "s3"},
                description=(
                    f"{spec.table} as Parquet at {{processed}}/{spec.table}/source=hostpms/"
                    f"year=/month=/day=, by the day of {spec.partition_column}; each run "
                    "rewrites only the day partitions it touched."
                ),
            ),
        ],
        ins={"batch": AssetIn(keys.deduplicated)},
        partitions_def=partitions,
        can_subset=True,
        check_specs=[checks.webhook_lag_spec(keys)],
    )
    def load(
        context: AssetExecutionContext,
        batch: pipeline.MappedBatch | None,
        postgres: PostgresResource,
        processed_store: ObjectStoreResource,
        engine: EngineResource,
    ):
        # One step writes the table and its Parquet days, so the rows it stored reach the
        # export without being read back (a ParquetDelta, see lake/parquet_delta.py).
        # Without a batch (the table chosen alone in the UI), there is nothing new to load.
        selected = context.selected_asset_keys
        property_id = sync_scope(context.partition_key).property_id
        with (
            fail_or_retry(context, property_id, retryable=False),
            ParquetDelta(spec) as delta,
            postgres.connect() as conn,
        ):
            if keys.table in selected:
                started = time.monotonic()
                batch = batch or pipeline.empty_batch(spec)
                keep = delta if keys.parquet in selected else None
                result = engine.engine().load_postgres(conn, batch, keep)
                stats = result.stats
                live_progress.rows_loaded(property_id, spec.table, batch.rows.num_rows)
                yield MaterializeResult(
                    asset_key=keys.table,
                    metadata={
                        "inserted": stats.inserted,
                        "versions_bumped": stats.updated,
                        "unchanged": stats.unchanged,
                        "older_state_ignored": stats.stale,
                        "rejected_written": result.rejected_written,
                        "raw_files_processed": result.files_processed,
                        **_stored_rows(conn, spec, property_id),
                        "duration_seconds": round(time.monotonic() - started, 2),
                    },
                )
                yield checks.evaluate_webhook_lag(keys, batch.rows, datetime.now(UTC))
            if keys.parquet in selected:
                started = time.monotonic()
                exported = pipeline.export_parquet(conn, spec, processed_store.url, delta=delta)
                yield MaterializeResult(
                    asset_key=keys.parquet,
                    metadata={
                        "partitions_rewritten": exported.partitions,
                        "partitions_merged_from_this_run": exported.merged,
                        "rows_written": exported.rows,
                        "dagster/row_count": parquet_store.dataset_summary(
                            processed_store.url, spec
                        ).row_count,
                        "exported_at": datetime.now(UTC).isoformat(),
                        "duration_seconds": round(time.monotonic() - started, 2),
                    },
                )
            # Months a first pass loaded show as materialized (defs/coverage.py).
            for event in coverage.history_materializations(
                conn, context.instance, get_settings(), spec, property_id
            ):
                context.log_event(event)

    return [raw, mapped, deduplicated, load]

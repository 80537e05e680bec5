"""Running the sync job in-process, for the command line (cron, scripts, the demo)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dagster import DagsterInstance

from hostpms_pipeline import progress
from hostpms_pipeline.cli import failures, signals
from hostpms_pipeline.defs import build_definitions
from hostpms_pipeline.defs.jobs import FULL_RESYNC_CONFIG
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import live_partition_key, register_properties
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import property_lock

Echo = Callable[[str], None]
# INFO shows the assets' own progress lines (a line per landed page); Dagster's
# step-by-step events stay in the instance's event log.
PROGRESS_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
# With a progress reporter listening (cli/progress.py), it shows the pages instead.
QUIET_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class SyncOutcome:
    property_id: str
    success: bool
    summary: str


def sync_properties(
    property_ids: Iterable[str], echo: Echo, *, full_resync: bool = False
) -> list[SyncOutcome]:
    """One job run per property; a property's failure never stops the others."""
    defs = build_definitions(get_settings())
    job = defs.resolve_job_def("hostpms_full_resync_job" if full_resync else "hostpms_sync_job")
    log_config = QUIET_RUN_CONFIG if progress.active() else PROGRESS_RUN_CONFIG
    run_config = {**log_config, **(FULL_RESYNC_CONFIG if full_resync else {})}
    instance = DagsterInstance.get()
    property_ids = list(property_ids)
    register_properties(instance, property_ids)  # the dynamic property dimension
    signals.fail_orphaned_runs(instance)  # runs a killed CLI left STARTED
    outcomes = []
    connect = property_lock.connect_from_settings(get_settings())
    for property_id in property_ids:
        echo(f"{property_id}: syncing...")
        with property_lock.claim_for_cli(connect, property_id) as ours:
            outcome = (
                _sync_until_drained(job, instance, property_id, run_config, echo)
                if ours
                else SyncOutcome(
                    property_id, True, f"SKIPPED: {property_lock.busy_line(property_id)}"
                )
            )
        outcomes.append(outcome)
        echo(f"{property_id}: {outcome.summary}")
        if signals.received():  # a stop signal ends the sync here
            break
    return outcomes


def _sync_until_drained(
    job, instance, property_id: str, run_config: dict, echo: Echo
) -> SyncOutcome:
    """Runs for the property until no raw file is left pending (each run reads a bounded batch)."""
    while True:
        try:
            result = job.execute_in_process(
                partition_key=live_partition_key(property_id),
                instance=instance,
                raise_on_error=False,
                run_config=run_config,
                tags={PROPERTY_TAG: property_id, **signals.run_tags()},
            )
        except Exception as error:  # noqa: BLE001 - reported per property, then the next one
            # One safe line: an error message may carry a URL with credentials.
            return SyncOutcome(property_id, False, f"FAILED: {failures.exception_line(error)}")
        if not result.success:
            return SyncOutcome(property_id, False, failures.run_failure_line(result))
        left = sum(
            _metadata(result, entity_keys(spec).mapped).get("raw_files_left_pending", 0)
            for spec in ENTITIES
        )
        if not left:
            return SyncOutcome(property_id, True, _summarise(result))
        if signals.received():  # stopped between two runs of the same property
            return SyncOutcome(property_id, False, f"INTERRUPTED; {left} raw file(s) left pending")
        echo(
            f"{property_id}: {_summarise(result)}; {left} raw file(s) still pending, running again"
        )


def _metadata(result, key) -> dict:
    for materialization in result.asset_materializations_for_node(key.to_python_identifier()):
        return {name: value.value for name, value in materialization.metadata.items()}
    return {}


def _materialization(result, key) -> dict:
    """A multi-asset step's metadata for one of its assets."""
    for event in result.all_events:
        if event.is_step_materialization and event.asset_key == key:
            return {name: value.value for name, value in event.materialization.metadata.items()}
    return {}


def _summarise(result) -> str:
    """One clause per entity: polled, mapped, rejected, and what PostgreSQL took."""
    parts = []
    for spec in ENTITIES:
        keys = entity_keys(spec)
        raw = _metadata(result, keys.raw)
        mapped = _metadata(result, keys.mapped)
        loaded = _materialization(result, keys.table)
        parts.append(
            f"{spec.collection}: {raw.get('dagster/row_count', 0)} polled, "
            f"{mapped.get('rows_in', 0)} raw → {mapped.get('dagster/row_count', 0)} rows, "
            f"{mapped.get('rejected', 0)} rejected, {loaded.get('inserted', 0)} new, "
            f"{loaded.get('versions_bumped', 0)} updated"
        )
    return "; ".join(parts)


def print_summary(echo: Echo) -> None:
    """What is now in PostgreSQL and Parquet, per entity and hotel."""
    from hostpms_pipeline.lake import parquet_store
    from hostpms_pipeline.warehouse import entity_store

    resources = build_definitions(get_settings()).resources
    processed = resources["processed_store"].url
    with resources["postgres"].connect() as conn:
        counts = {spec.table: entity_store.row_counts(conn, spec) for spec in ENTITIES}
    for spec in ENTITIES:
        echo(f"\n{spec.table.capitalize()} in PostgreSQL:")
        for hotel_id, count in counts[spec.table].items():
            echo(f"  {hotel_id}: {count}")
        parquet = parquet_store.dataset_summary(processed, spec)
        echo(f"Parquet: {parquet.row_count} rows under {processed}/{spec.table}/")

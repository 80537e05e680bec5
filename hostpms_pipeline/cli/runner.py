"""Running the sync job in-process, for the command line (cron, scripts, the demo)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dagster import DagsterInstance

from hostpms_pipeline.cli import failures, signals  # hardening
from hostpms_pipeline.defs.jobs import FULL_RESYNC_CONFIG
from hostpms_pipeline.defs.keys import BOOKINGS, MAPPED_BOOKINGS, RAW_RESERVATIONS
from hostpms_pipeline.defs.partitions import live_partition_key
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import property_lock  # hardening

Echo = Callable[[str], None]
# INFO shows the assets' own progress lines (a line per landed page); Dagster's
# step-by-step events stay in the instance's event log.
PROGRESS_RUN_CONFIG = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


@dataclass
class SyncOutcome:
    property_id: str
    success: bool
    summary: str


def sync_properties(
    property_ids: Iterable[str], echo: Echo, *, full_resync: bool = False
) -> list[SyncOutcome]:
    """One job run per property; a property's failure never stops the others."""
    from hostpms_pipeline.definitions import defs

    job = defs.resolve_job_def("hostpms_full_resync_job" if full_resync else "hostpms_sync_job")
    run_config = {**PROGRESS_RUN_CONFIG, **(FULL_RESYNC_CONFIG if full_resync else {})}
    instance = DagsterInstance.get()
    signals.fail_orphaned_runs(instance)  # hardening: runs a killed CLI left STARTED
    outcomes = []
    connect = property_lock.connect_from_settings(get_settings())  # hardening: lock
    for property_id in property_ids:
        echo(f"{property_id}: syncing...")
        with property_lock.claim_for_cli(connect, property_id) as ours:  # hardening: lock
            outcome = (
                _sync_until_drained(job, instance, property_id, run_config, echo)
                if ours
                else SyncOutcome(
                    property_id, True, f"SKIPPED: {property_lock.busy_line(property_id)}"
                )
            )
        outcomes.append(outcome)
        echo(f"{property_id}: {outcome.summary}")
        if signals.received():  # hardening: a stop signal ends the sync here
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
                tags={PROPERTY_TAG: property_id, **signals.run_tags()},  # hardening: run_tags
            )
        except Exception as error:  # noqa: BLE001 - reported per property, then the next one
            # One safe line (hardening): an error message may carry a URL with credentials.
            return SyncOutcome(property_id, False, f"FAILED: {failures.exception_line(error)}")
        if not result.success:
            return SyncOutcome(property_id, False, failures.run_failure_line(result))  # hardening
        left = _metadata(result, MAPPED_BOOKINGS).get("raw_files_left_pending", 0)
        if not left:
            return SyncOutcome(property_id, True, _summarise(result))
        if signals.received():  # hardening: stopped between two runs of the same property
            return SyncOutcome(property_id, False, f"INTERRUPTED; {left} raw file(s) left pending")
        echo(
            f"{property_id}: {_summarise(result)}; {left} raw file(s) still pending, running again"
        )


def _metadata(result, key) -> dict:
    for materialization in result.asset_materializations_for_node(key.to_python_identifier()):
        return {name: value.value for name, value in materialization.metadata.items()}
    return {}


def _summarise(result) -> str:
    raw = _metadata(result, RAW_RESERVATIONS)
    mapped = _metadata(result, MAPPED_BOOKINGS)
    loaded = _metadata(result, BOOKINGS)
    return (
        f"{raw.get('pages', 0)} pages, {raw.get('dagster/row_count', 0)} reservations polled; "
        f"{mapped.get('rows_in', 0)} raw records → {mapped.get('dagster/row_count', 0)} bookings, "
        f"{mapped.get('rejected', 0)} rejected; PostgreSQL: {loaded.get('inserted', 0)} new, "
        f"{loaded.get('versions_bumped', 0)} updated"
    )


def print_summary(echo: Echo) -> None:
    """What is now in PostgreSQL and Parquet, per hotel."""
    from hostpms_pipeline.definitions import defs
    from hostpms_pipeline.lake import parquet_store
    from hostpms_pipeline.warehouse import booking_store

    resources = defs.resources
    with resources["postgres"].connect() as conn:
        counts = booking_store.booking_counts(conn)
    echo("\nBookings in PostgreSQL:")
    for hotel_id, count in counts.items():
        echo(f"  {hotel_id}: {count}")
    parquet = parquet_store.read_bookings(resources["processed_store"].url, columns=["external_id"])
    echo(
        f"Parquet dataset: {parquet.num_rows} rows under {resources['processed_store'].url}/bookings/"
    )

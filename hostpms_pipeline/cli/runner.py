"""Running the sync for the command line (cron, scripts, the demo), without a Dagster run.

Each property is synced by ``sync.property_sync`` in this process: the same steps as
the Dagster assets, streamed (see ``hostpms_pipeline/sync``). A property's failure never
stops the others; errors that may heal are retried within ``HOSTPMS_MAX_RETRY_WAIT_SECONDS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

import psycopg

from hostpms_pipeline import errors, stopping
from hostpms_pipeline.cli import signals
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.lake import raw_integrity
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.sync.connections import Connections
from hostpms_pipeline.sync.property_sync import EntityOutcome, sync_property
from hostpms_pipeline.sync.stages import StageClock
from hostpms_pipeline.warehouse import property_lock, sync_reports

Echo = Callable[[str], None]


@dataclass
class SyncOutcome:
    property_id: str
    success: bool
    summary: str


def sync_properties(
    property_ids: Iterable[str],
    echo: Echo,
    *,
    full_resync: bool = False,
    clock: StageClock | None = None,
) -> list[SyncOutcome]:
    """Every property in turn; a property's failure never stops the others."""
    settings = get_settings()
    clock = clock or StageClock()
    connections = Connections.from_settings(settings)

    @cache
    def engine():
        """The deployment's engine (HOSTPMS_ENGINE), made when there is data to map."""
        if settings.engine == "local":
            from hostpms_pipeline.engine.engines import LocalEngine

            return LocalEngine()
        from hostpms_pipeline.defs.resources import engine_resource

        return engine_resource(settings).engine()

    @cache
    def tables():
        from hostpms_pipeline.engine.mapping import load_mapping_tables

        return load_mapping_tables(settings.mapping_file)

    outcomes = []
    waited = [0.0]  # seconds of retry waits so far: the budget is the whole sync's
    for property_id in property_ids:
        echo(f"{property_id}: syncing...")
        with property_lock.claim_for_cli(connections.connect, property_id) as ours:
            outcome = (
                _sync_with_retries(
                    connections, (engine, tables), property_id, full_resync, clock, echo, waited
                )
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


def _sync_with_retries(
    connections: Connections,
    steps,
    property_id: str,
    full_resync: bool,
    clock: StageClock,
    echo: Echo,
    waited: list[float],
) -> SyncOutcome:
    settings = connections.settings
    budget = settings.max_retry_wait_seconds
    retry = 0
    while True:
        try:
            with connections.client(property_id) as client:
                entities = sync_property(
                    connections,
                    client,
                    property_id,
                    steps,
                    clock,
                    full_resync=full_resync and retry == 0,
                )
            with connections.connect() as conn:
                for entry in raw_integrity.open_entries(conn, property_id):
                    echo(raw_integrity.set_aside_line(entry))
                # For the UI and alerts: the hostpms_cli_syncs sensor (defs/cli_syncs.py).
                sync_reports.record(conn, property_id, loaded=_loaded(entities))
            return SyncOutcome(property_id, True, "; ".join(e.summary() for e in entities))
        except (stopping.StopRequested, KeyboardInterrupt):
            return SyncOutcome(property_id, False, _interrupted_line())
        except Exception as error:  # noqa: BLE001 - reported per property, then the next one
            if signals.received():
                return SyncOutcome(property_id, False, _interrupted_line())
            problem = errors.classify_for(error, settings)
            decision = errors.next_retry(problem, retry, budget)
            if decision.wait is None or waited[0] + decision.wait > budget + 1e-6:
                line = problem.message
                if problem.transient and waited[0]:
                    line += (
                        f" (still failing after {waited[0]:.0f} s of retry waits; "
                        "HOSTPMS_MAX_RETRY_WAIT_SECONDS bounds the wait)"
                    )
                _record_failure(connections, property_id, line)
                return SyncOutcome(property_id, False, f"FAILED: {line}")
            next_try = datetime.now().astimezone() + timedelta(seconds=decision.wait)
            echo(
                f"{property_id}: {problem.message}; retry {retry + 1} of {decision.retries} "
                f"at {next_try:%H:%M:%S} (in {decision.wait:.0f} s)"
            )
            try:
                time.sleep(decision.wait)  # a stop signal ends the wait (KeyboardInterrupt)
            except KeyboardInterrupt:
                return SyncOutcome(property_id, False, _interrupted_line())
            waited[0] += decision.wait
            retry += 1


def _loaded(entities: list[EntityOutcome]) -> dict[str, dict[str, int]]:
    """The counts of each collection that loaded files (``SyncReport.loaded``)."""
    return {
        e.spec.collection: {
            "records_landed": e.polled,
            "rows_mapped": e.rows,
            "rejected": e.rejected,
            "inserted": e.inserted,
            "versions_bumped": e.updated,
        }
        for e in entities
        if e.files_loaded
    }


def _record_failure(connections: Connections, property_id: str, line: str) -> None:
    """The failure, for `hostpms status` and the alert; not when the database is what failed."""
    try:
        with connections.connect() as conn:
            sync_reports.record(conn, property_id, problem=line)
    except (psycopg.Error, OSError):
        pass  # the command's own line and exit code still say it


def _interrupted_line() -> str:
    by = f" by {signals.name()}" if signals.received() else ""
    return f"INTERRUPTED{by} (checkpoints stay where the last landed pages left them)"


def print_summary(echo: Echo) -> None:
    """What is now in PostgreSQL and Parquet, per entity and hotel."""
    from hostpms_pipeline.lake import parquet_store
    from hostpms_pipeline.warehouse import entity_store

    connections = Connections.from_settings(get_settings())
    processed = connections.processed_url
    with connections.connect() as conn:
        counts = {spec.table: entity_store.row_counts(conn, spec) for spec in ENTITIES}
    for spec in ENTITIES:
        echo(f"\n{spec.table.capitalize()} in PostgreSQL:")
        for hotel_id, count in counts[spec.table].items():
            echo(f"  {hotel_id}: {count}")
        parquet = parquet_store.dataset_summary(processed, spec)
        echo(f"Parquet: {parquet.row_count} rows under {processed}/{spec.table}/")

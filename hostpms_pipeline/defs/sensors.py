"""Sensors: webhook drops into PostgreSQL within seconds, and the PRD's alerts."""

import json
from datetime import UTC, datetime

from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)

from hostpms_pipeline.defs import alerts
from hostpms_pipeline.defs.jobs import (
    hostpms_full_resync_job,
    hostpms_sync_job,
    hostpms_webhook_job,
)
from hostpms_pipeline.defs.partitions import live_partition_key, register_properties
from hostpms_pipeline.defs.resources import NotifierResource, ObjectStoreResource, PostgresResource
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.ingest import webhook_discovery
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import checkpoints, properties, sync_reports

WAITING_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED]
# A production connector's alarms run from the first start of the daemon; what loads data
# (the hourly schedule, the webhook sensor) is switched on by the operator (README).
ALARMS_START_ON = DefaultSensorStatus.RUNNING


@sensor(
    name="hostpms_webhook_drops",
    job=hostpms_webhook_job,
    minimum_interval_seconds=2,
    description=(
        "Lists the raw store's webhook folders for the time since the last tick (and a "
        "look-back for late objects), enters new drops in the raw-file ledger and starts a "
        "load for each property that has some."
    ),
)
def hostpms_webhook_drops(
    context: SensorEvaluationContext, raw_store: ObjectStoreResource, postgres: PostgresResource
):
    # Cursor: when the previous tick listed; each tick lists from there less a look-back.
    # The first tick looks back that much only: every load also catches up on its own
    # property's older drops (webhook_discovery.catch_up), so nothing is left behind.
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = datetime.now(UTC)
    listed_through = datetime.fromisoformat(cursor["listed_through"]) if cursor else now
    with postgres.connect() as conn:
        property_ids = properties.active_property_ids(conn, get_settings().property_ids)
        new_drops = webhook_discovery.discover(raw_store.open(), conn, property_ids, listed_through)
    register_properties(context.instance, [p for p, drops in new_drops.items() if drops])
    next_cursor = json.dumps({"listed_through": now.isoformat()})
    # A load not yet started will take every pending drop of its property: ask for no other.
    waiting = _properties_with_a_load_waiting(context.instance)
    run_requests = [
        RunRequest(
            run_key=f"webhooks:{property_id}:{now.isoformat()}",
            partition_key=live_partition_key(property_id, now),
            tags={PROPERTY_TAG: property_id, "hostpms/webhook_drops": str(len(drops))},
        )
        for property_id, drops in new_drops.items()
        if drops and property_id not in waiting
    ]
    if not run_requests:
        reason = "no new webhook drops" if not any(new_drops.values()) else "loads already waiting"
        return SensorResult(skip_reason=SkipReason(reason), cursor=next_cursor)
    return SensorResult(run_requests=run_requests, cursor=next_cursor)


def _properties_with_a_load_waiting(instance: DagsterInstance) -> set[str]:
    records = instance.get_run_records(
        filters=RunsFilter(job_name=hostpms_webhook_job.name, statuses=WAITING_STATUSES)
    )
    return {record.dagster_run.tags.get(PROPERTY_TAG) for record in records}


@run_failure_sensor(
    name="hostpms_sync_failure_alert",
    monitored_jobs=[hostpms_sync_job, hostpms_webhook_job, hostpms_full_resync_job],
    description="On each failed sync: a warning, critical from the third failure in a row (PRD).",
    default_status=ALARMS_START_ON,
)
def hostpms_sync_failure_alert(
    context: RunFailureSensorContext, notifier: NotifierResource, postgres: PostgresResource
):
    property_id = context.dagster_run.tags.get(PROPERTY_TAG)
    if property_id is None:
        return
    with postgres.connect() as conn:
        cli = sync_reports.outcomes(conn, property_id, alerts.FAILURES_LOOKED_AT)
    failures = alerts.consecutive_failures(context.instance, property_id, PROPERTY_TAG, cli)
    alert = alerts.failure_alert(property_id, max(failures, 1), context.dagster_run.job_name)
    context.log.warning(alert.text())
    notifier.notifier().notify(alert)


@sensor(
    name="hostpms_sync_lag_alarm",
    minimum_interval_seconds=300,
    description="Critical alert when a property's data is more than 2 hours old (once per episode).",
    default_status=ALARMS_START_ON,
)
def hostpms_sync_lag_alarm(
    context: SensorEvaluationContext, postgres: PostgresResource, notifier: NotifierResource
):
    # Cursor: the properties already alerted as stale, so an episode alerts once.
    alerted = set(json.loads(context.cursor)) if context.cursor else set()
    with postgres.connect() as conn:
        last_sync = checkpoints.last_sync_times(conn, "reservations")
        property_ids = properties.active_property_ids(conn, get_settings().property_ids)
    stale = alerts.stale_properties(last_sync, property_ids, datetime.now(UTC))
    for property_id in sorted(stale.keys() - alerted):
        alert = alerts.Alert(
            "critical", property_id, "data sync lag over 2 hours", stale[property_id]
        )
        context.log.error(alert.text())
        notifier.notifier().notify(alert)
    context.update_cursor(json.dumps(sorted(stale)))  # a property that recovers may alert again
    return SkipReason(f"stale properties: {', '.join(sorted(stale)) or 'none'}")

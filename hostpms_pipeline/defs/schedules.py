"""The hourly polling schedule (PRD TR-3: ``cron(0 * * * ? *)``)."""

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from hostpms_pipeline.defs.jobs import hostpms_sync_job
from hostpms_pipeline.defs.partitions import (
    PARTITION_TIMEZONE,
    live_partition_key,
    register_properties,
)
from hostpms_pipeline.defs.resources import PostgresResource
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.warehouse import properties

PROPERTY_TAG = "hostpms/property"  # dagster.yaml limits runs to one per property at a time


@schedule(
    name="hostpms_hourly_poll",
    cron_schedule="0 * * * *",
    execution_timezone=PARTITION_TIMEZONE,
    job=hostpms_sync_job,
    description="Every hour, sync every connected property incrementally from its checkpoint.",
)
def hostpms_hourly_poll(context: ScheduleEvaluationContext, postgres: PostgresResource):
    scheduled_at = context.scheduled_execution_time
    # HOSTPMS_PROPERTY_IDS and the connected properties, less the disconnected ones.
    with postgres.connect() as conn:
        property_ids = properties.active_property_ids(conn, get_settings().property_ids)
    register_properties(context.instance, property_ids)
    for property_id in property_ids:
        partition_key = live_partition_key(property_id, scheduled_at)
        yield RunRequest(
            run_key=f"{property_id}:{scheduled_at.isoformat()}",
            partition_key=partition_key,
            tags={PROPERTY_TAG: property_id},
        )

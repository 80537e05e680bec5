"""The hourly polling schedule (PRD TR-3: ``cron(0 * * * ? *)``)."""

from dagster import RunRequest, ScheduleEvaluationContext, schedule

from hostpms_pipeline.defs.jobs import hostpms_sync_job
from hostpms_pipeline.defs.partitions import PARTITION_TIMEZONE, live_partition_key
from hostpms_pipeline.settings import get_settings

PROPERTY_TAG = "hostpms/property"  # dagster.yaml limits runs to one per property at a time


@schedule(
    name="hostpms_hourly_poll",
    cron_schedule="0 * * * *",
    execution_timezone=PARTITION_TIMEZONE,
    job=hostpms_sync_job,
    description="Every hour, sync every connected property incrementally from its checkpoint.",
)
def hostpms_hourly_poll(context: ScheduleEvaluationContext):
    scheduled_at = context.scheduled_execution_time
    for property_id in get_settings().property_ids:
        partition_key = live_partition_key(property_id, scheduled_at)
        yield RunRequest(
            run_key=f"{property_id}:{scheduled_at.isoformat()}",
            partition_key=partition_key,
            tags={PROPERTY_TAG: property_id},
        )

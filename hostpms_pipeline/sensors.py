"""The sensor that brings webhook drops from the raw store into PostgreSQL within seconds."""

import json
from datetime import UTC, datetime

from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from hostpms_pipeline import webhook_discovery
from hostpms_pipeline.jobs import hostpms_webhook_job
from hostpms_pipeline.partitions import live_partition_key
from hostpms_pipeline.resources import ObjectStoreResource, PostgresResource
from hostpms_pipeline.schedules import PROPERTY_TAG
from hostpms_pipeline.settings import get_settings


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
        new_drops = webhook_discovery.discover(
            raw_store.open(), conn, get_settings().property_ids, listed_through
        )
    next_cursor = json.dumps({"listed_through": now.isoformat()})
    run_requests = [
        RunRequest(
            run_key=f"webhooks:{property_id}:{now.isoformat()}",
            partition_key=live_partition_key(property_id, now),
            tags={PROPERTY_TAG: property_id, "hostpms/webhook_drops": str(len(drops))},
        )
        for property_id, drops in new_drops.items()
        if drops
    ]
    if not run_requests:
        return SensorResult(skip_reason=SkipReason("no new webhook drops"), cursor=next_cursor)
    return SensorResult(run_requests=run_requests, cursor=next_cursor)

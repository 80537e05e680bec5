"""Everything Dagster: the asset factory, checks, partitions, jobs, schedules, sensors, resources."""

from dagster import Definitions, in_process_executor

from hostpms_pipeline.defs.assets import entity_assets
from hostpms_pipeline.defs.checks import warehouse_checks
from hostpms_pipeline.defs.cli_syncs import hostpms_cli_syncs
from hostpms_pipeline.defs.console_logger import hostpms_console_logger
from hostpms_pipeline.defs.gdpr import (
    hostpms_gdpr_daily_retention,
    hostpms_gdpr_erasure_job,
    hostpms_gdpr_retention_job,
)
from hostpms_pipeline.defs.jobs import (
    hostpms_full_resync_job,
    hostpms_sync_job,
    hostpms_webhook_job,
)
from hostpms_pipeline.defs.partitions import property_month_partitions
from hostpms_pipeline.defs.properties import hostpms_property_partitions, properties_healthy
from hostpms_pipeline.defs.resources import build_resources
from hostpms_pipeline.defs.schedules import hostpms_hourly_poll
from hostpms_pipeline.defs.sensors import (
    hostpms_sync_failure_alert,
    hostpms_sync_lag_alarm,
    hostpms_webhook_drops,
)
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.settings import Settings


def build_definitions(settings: Settings) -> Definitions:
    """The connector's one ``Definitions`` object, for these settings."""
    partitions = property_month_partitions(settings)
    return Definitions(
        assets=[asset for spec in ENTITIES for asset in entity_assets(spec, partitions)],
        asset_checks=[
            *(check for spec in ENTITIES for check in warehouse_checks(spec)),
            properties_healthy,
        ],
        jobs=[
            hostpms_sync_job,
            hostpms_full_resync_job,
            hostpms_webhook_job,
            hostpms_gdpr_erasure_job,
            hostpms_gdpr_retention_job,
        ],
        schedules=[hostpms_hourly_poll, hostpms_gdpr_daily_retention],
        sensors=[
            hostpms_webhook_drops,
            hostpms_sync_failure_alert,
            hostpms_sync_lag_alarm,
            hostpms_property_partitions,
            hostpms_cli_syncs,
        ],
        resources=build_resources(settings),
        loggers={"console": hostpms_console_logger},  # no stack traces unless --verbose
        # The steps of one sync run one after the other on Arrow tables; one process
        # avoids re-importing the project for every step.
        executor=in_process_executor,
    )

"""The code location: one ``Definitions`` object for the whole connector."""

from dagster import Definitions, in_process_executor

from hostpms_pipeline.defs.assets import pipeline_assets
from hostpms_pipeline.defs.checks import pipeline_checks
from hostpms_pipeline.defs.console_logger import hostpms_console_logger
from hostpms_pipeline.defs.integrity_checks import integrity_checks
from hostpms_pipeline.defs.jobs import (
    hostpms_full_resync_job,
    hostpms_sync_job,
    hostpms_webhook_job,
)
from hostpms_pipeline.defs.resources import build_resources
from hostpms_pipeline.defs.schedules import hostpms_hourly_poll
from hostpms_pipeline.defs.sensors import (
    hostpms_sync_failure_alert,
    hostpms_sync_lag_alarm,
    hostpms_webhook_drops,
)
from hostpms_pipeline.settings import get_settings

defs = Definitions(
    assets=pipeline_assets,
    asset_checks=[*pipeline_checks, *integrity_checks],  # hardening: integrity_checks
    jobs=[hostpms_sync_job, hostpms_full_resync_job, hostpms_webhook_job],
    schedules=[hostpms_hourly_poll],
    sensors=[hostpms_webhook_drops, hostpms_sync_failure_alert, hostpms_sync_lag_alarm],
    resources=build_resources(get_settings()),
    loggers={"console": hostpms_console_logger},  # hardening: no stack traces unless --verbose
    # The steps of one sync run one after the other on Arrow tables; one process
    # avoids re-importing the project for every step.
    executor=in_process_executor,
)

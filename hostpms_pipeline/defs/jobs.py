"""Jobs: sync a property (poll, map, dedup, load), resync it from scratch, load its webhook drops."""

from dagster import AssetSelection, define_asset_job

from hostpms_pipeline.defs.assets import pipeline_assets
from hostpms_pipeline.defs.keys import RAW_RESERVATIONS
from hostpms_pipeline.defs.partitions import property_month_partitions

SYNC_SELECTION = AssetSelection.assets(*pipeline_assets)

hostpms_sync_job = define_asset_job(
    name="hostpms_sync_job",
    selection=SYNC_SELECTION,
    partitions_def=property_month_partitions,
    description="Poll one HostPMS property and carry its new data to PostgreSQL and Parquet.",
)

FULL_RESYNC_CONFIG = {
    "ops": {RAW_RESERVATIONS.to_python_identifier(): {"config": {"full_resync": True}}}
}

# One action in the UI: pick the property's current month and launch.
hostpms_full_resync_job = define_asset_job(
    name="hostpms_full_resync_job",
    selection=SYNC_SELECTION,
    partitions_def=property_month_partitions,
    config=FULL_RESYNC_CONFIG,
    description="Re-read one property's whole HostPMS history (choose its current month) and reload it.",
)

# Webhook drops found by the sensor: everything after the polling step.
hostpms_webhook_job = define_asset_job(
    name="hostpms_webhook_job",
    selection=SYNC_SELECTION - AssetSelection.assets(RAW_RESERVATIONS),
    partitions_def=property_month_partitions,
    description="Carry a property's new webhook drops (already landed) to PostgreSQL and Parquet.",
)

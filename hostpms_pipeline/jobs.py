"""Jobs: the one that syncs a property (poll, map, dedup, load) end to end."""

from dagster import AssetSelection, define_asset_job

from hostpms_pipeline.assets import pipeline_assets
from hostpms_pipeline.partitions import property_month_partitions

hostpms_sync_job = define_asset_job(
    name="hostpms_sync_job",
    selection=AssetSelection.assets(*pipeline_assets),
    partitions_def=property_month_partitions,
    description="Poll one HostPMS property and carry its new data to PostgreSQL and Parquet.",
)

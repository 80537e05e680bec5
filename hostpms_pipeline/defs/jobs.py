"""Jobs: sync a property (poll, map, dedup, load every entity), resync it from scratch, load its webhook drops.

The partitions come from the assets they select (built when the code location loads).
"""

from dagster import AssetSelection, define_asset_job

from hostpms_pipeline.defs.keys import KEY_PREFIX, entity_keys
from hostpms_pipeline.entities import ENTITIES

SYNC_SELECTION = AssetSelection.key_prefixes([KEY_PREFIX])
RAW_SELECTION = AssetSelection.assets(*(entity_keys(spec).raw for spec in ENTITIES))

hostpms_sync_job = define_asset_job(
    name="hostpms_sync_job",
    selection=SYNC_SELECTION,
    description="Poll one HostPMS property and carry its new data to PostgreSQL and Parquet.",
)

FULL_RESYNC_CONFIG = {
    "ops": {
        entity_keys(spec).raw.to_python_identifier(): {"config": {"full_resync": True}}
        for spec in ENTITIES
    }
}

# One action in the UI: pick the property's current month and launch.
hostpms_full_resync_job = define_asset_job(
    name="hostpms_full_resync_job",
    selection=SYNC_SELECTION,
    config=FULL_RESYNC_CONFIG,
    description="Re-read one property's whole HostPMS history (choose its current month) and reload it.",
)

# Webhook drops found by the sensor: everything after the polling steps.
hostpms_webhook_job = define_asset_job(
    name="hostpms_webhook_job",
    selection=SYNC_SELECTION - RAW_SELECTION,
    description="Carry a property's new webhook drops (already landed) to PostgreSQL and Parquet.",
)

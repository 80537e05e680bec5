"""What a ``hostpms sync`` loaded, told to the Dagster instance (the UI shows it as a run would).

The command runs no Dagster run, so after a property's sync that loaded rows it reports
runless materializations of the live partition for each entity's assets (row counts as
the UI shows them), and the months a first pass covered (``defs/coverage.py``). Imported
only then: a sync that finds nothing new does not pay for Dagster.
"""

from __future__ import annotations

from dagster import AssetMaterialization, DagsterInstance

from hostpms_pipeline.defs.coverage import history_materializations
from hostpms_pipeline.defs.keys import entity_keys
from hostpms_pipeline.defs.partitions import live_partition_key, register_properties
from hostpms_pipeline.lake import parquet_store
from hostpms_pipeline.sync.connections import Connections
from hostpms_pipeline.sync.property_sync import EntityOutcome
from hostpms_pipeline.warehouse import entity_store


def report(connections: Connections, property_id: str, outcomes: list[EntityOutcome]) -> int:
    """Materializations for what the property's sync loaded; returns how many were reported."""
    instance = DagsterInstance.get()
    register_properties(instance, [property_id])
    partition = live_partition_key(property_id)
    events: list[AssetMaterialization] = []
    with connections.connect() as conn:
        for outcome in outcomes:
            spec = outcome.spec
            keys = entity_keys(spec)
            events += history_materializations(
                conn, instance, connections.settings, spec, property_id
            )
            if not outcome.files_loaded:
                continue
            by_hotel = entity_store.row_counts(conn, spec)
            dataset = parquet_store.dataset_summary(connections.processed_url, spec)
            common = {"synced_by": "hostpms sync"}
            events += [
                AssetMaterialization(
                    keys.raw,
                    partition=partition,
                    metadata={**common, "records_landed": outcome.polled},
                ),
                AssetMaterialization(
                    keys.mapped,
                    partition=partition,
                    metadata={**common, "rows_mapped": outcome.rows, "rejected": outcome.rejected},
                ),
                AssetMaterialization(
                    keys.deduplicated,
                    partition=partition,
                    metadata={**common, "rows_out": outcome.rows},
                ),
                AssetMaterialization(
                    keys.table,
                    partition=partition,
                    metadata={
                        **common,
                        "dagster/row_count": sum(by_hotel.values()),
                        "property_rows": by_hotel.get(property_id, 0),
                        "inserted": outcome.inserted,
                        "versions_bumped": outcome.updated,
                    },
                ),
                AssetMaterialization(
                    keys.parquet,
                    partition=partition,
                    metadata={**common, "dagster/row_count": dataset.row_count},
                ),
            ]
    for event in events:
        instance.report_runless_asset_event(event)
    return len(events)

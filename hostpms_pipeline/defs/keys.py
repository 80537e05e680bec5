"""Asset keys of each entity's chain, shared by the assets, their checks, the jobs and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey

from hostpms_pipeline.entities.spec import EntitySpec

KEY_PREFIX = "hostpms"


@dataclass(frozen=True)
class EntityKeys:
    raw: AssetKey  # pages landed in the raw bucket
    mapped: AssetKey  # records mapped to rows, rejects set aside
    deduplicated: AssetKey  # one row per key
    table: AssetKey  # the PostgreSQL table
    parquet: AssetKey  # the Parquet dataset

    @property
    def group(self) -> str:
        return self.table.path[-1]


def entity_keys(spec: EntitySpec) -> EntityKeys:
    return EntityKeys(
        raw=AssetKey([KEY_PREFIX, f"raw_{spec.collection}"]),
        mapped=AssetKey([KEY_PREFIX, f"mapped_{spec.table}"]),
        deduplicated=AssetKey([KEY_PREFIX, f"deduplicated_{spec.table}"]),
        table=AssetKey([KEY_PREFIX, spec.table]),
        parquet=AssetKey([KEY_PREFIX, f"{spec.table}_parquet"]),
    )

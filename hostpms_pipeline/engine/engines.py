"""The two engines behind the same steps: ``local`` (Arrow, in this process) and ``spark``.

Both take the same entity specs and mapping tables and leave the same rows in
PostgreSQL and Parquet; a deployment picks one with ``HOSTPMS_ENGINE`` (or the
Dagster ``engine`` resource's ``name``). Assets call the steps through an engine.
"""

from __future__ import annotations

from typing import Any, Literal

from hostpms_pipeline.engine import pipeline

EngineName = Literal["local", "spark"]
ENGINE_NAMES: tuple[EngineName, ...] = ("local", "spark")


class LocalEngine:
    """Today's engine: ``engine.pipeline``'s functions as they are."""

    name = "local"

    def map_batch(self, raw: pipeline.RawBatch, tables: Any) -> pipeline.MappedBatch:
        return pipeline.map_batch(raw, tables)

    def deduplicate(self, batch: pipeline.MappedBatch) -> pipeline.MappedBatch:
        return pipeline.deduplicate(batch)

    def load_postgres(self, conn: Any, batch: Any, delta: Any = None) -> pipeline.LoadResult:
        return pipeline.load_postgres(conn, batch, delta)

    def export_parquet(
        self, conn: Any, spec: Any, processed_url: str, delta: Any = None
    ) -> pipeline.ExportResult:
        return pipeline.export_parquet(conn, spec, processed_url, delta=delta)

    def process_pending(self, *args: Any, **kwargs: Any) -> list[pipeline.LoadResult]:
        return pipeline.process_pending(*args, **kwargs)

"""The whole sync of a property in one process, without a Dagster run: what ``hostpms sync`` runs.

The same steps as the Dagster assets (``ingest`` and ``engine``), streamed: pages are
mapped and loaded while later ones still arrive, and each Parquet day is written once
per sync. Dagster's schedule runs the assets; both keep the same guarantees.
"""

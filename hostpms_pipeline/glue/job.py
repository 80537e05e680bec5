"""An AWS Glue job (Glue 5.0: Spark 3.5, Python 3.11): one property's landed raw files of a
date window, through the Spark engine into PostgreSQL and Parquet.

Glue runs this file as the job's script, with the project installed as a Python
library (``--additional-python-modules``); the same runs anywhere with
``python -m hostpms_pipeline.glue.job``. Job arguments::

    --raw_url s3://hotel-data-raw   --processed_url s3://hotel-data-processed
    --property_id PT-LIS-001        --window_start 2026-01-01  --window_end 2026-02-01
    --database_secret_id hostpms/database-url   (or --database_url, not for production)
    [--db_schema public] [--collections reservations,guests] [--spark_master local[2]]

The window is the files' arrival days, [start, end) in UTC (raw keys begin with the
arrival time). Files are entered in the raw-file ledger if they are not there yet
and marked processed in the same transaction as their rows, as an hourly run
would, so the job and the hourly sync never load a file twice. PostgreSQL is
reached through a Glue connection in the database's VPC; its URL comes from
Secrets Manager, never from a job argument in production (Glue shows those).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time

from hostpms_pipeline.engine.mapping import load_mapping_tables
from hostpms_pipeline.entities import BY_COLLECTION, ENTITIES
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.gdpr import suppression
from hostpms_pipeline.ingest.webhook_discovery import list_drops
from hostpms_pipeline.lake.raw_layout import RAW_PREFIX, arrival_time, polling_key
from hostpms_pipeline.lake.storage import ObjectStore, open_store
from hostpms_pipeline.warehouse import database, ledger

REQUIRED = ("raw_url", "processed_url", "property_id", "window_start", "window_end")
OPTIONAL = ("database_url", "database_secret_id", "db_schema", "collections", "spark_master")


def arguments(argv: Sequence[str]) -> dict[str, str | None]:
    """Glue's job arguments (``--name value``); Glue's own parser when running on Glue."""
    try:
        from awsglue.utils import getResolvedOptions  # only on Glue
    except ImportError:
        parser = argparse.ArgumentParser(prog="hostpms-glue-job")
        for name in REQUIRED:
            parser.add_argument(f"--{name}", required=True)
        for name in OPTIONAL:
            parser.add_argument(f"--{name}")
        known, _ = parser.parse_known_args(argv)  # Glue adds arguments of its own
        return vars(known)
    given = getResolvedOptions(list(argv), list(REQUIRED))
    present = [name for name in OPTIONAL if f"--{name}" in argv]
    return {**dict.fromkeys(OPTIONAL), **given, **getResolvedOptions(list(argv), present)}


def _day(text: str) -> datetime:
    return datetime.combine(date.fromisoformat(text), time(), UTC)


def files_in_window(
    store: ObjectStore, property_id: str, spec: EntitySpec, start: datetime, end: datetime
) -> list[tuple[str, str, datetime]]:
    """(location, kind, arrival) of the entity's polled pages and webhook drops that arrived
    in [start, end), listed from ``start`` on (keys begin with the arrival time)."""
    prefix = f"{RAW_PREFIX}/{property_id}/polling/"
    after = polling_key(property_id, "", start).rsplit("_", 1)[0]
    found = [
        (store.location(info.key), "polling", arrival_time(info.key))
        for info in store.list(prefix, start_after=after)
        if info.key.endswith(f"_{spec.collection}.json")
    ]
    found += [
        (store.location(info.key), "webhook", arrival_time(info.key))
        for info in list_drops(store, property_id, spec, start)
    ]
    return sorted(entry for entry in found if start <= entry[2] < end)


def _database_url(options: dict[str, str | None]) -> str:
    if options.get("database_secret_id"):
        import boto3

        secret = boto3.client("secretsmanager").get_secret_value(
            SecretId=options["database_secret_id"]
        )
        return secret["SecretString"].strip()
    if options.get("database_url"):
        return options["database_url"]  # type: ignore[return-value]
    raise SystemExit("hostpms glue job: give --database_secret_id (or --database_url)")


def _session(master: str | None):
    from pyspark.sql import SparkSession

    if not master:  # on Glue: the job's own session
        return SparkSession.builder.getOrCreate()
    from dagster_pyspark.resources import spark_session_from_config

    from hostpms_pipeline.engine.spark.java import check_java
    from hostpms_pipeline.engine.spark.session import (
        spark_config,
        use_this_python_for_local_workers,
    )

    config = spark_config(master)
    if master.startswith("local"):
        check_java()
    use_this_python_for_local_workers(config)
    return spark_session_from_config(config)


def run(options: dict[str, str | None], session) -> dict[str, dict[str, int]]:
    """The job itself; returns, per collection, what PostgreSQL took."""
    from hostpms_pipeline.engine.spark.engine import SparkEngine

    raw_url, processed_url = options["raw_url"], options["processed_url"]
    property_id = options["property_id"]
    assert raw_url and processed_url and property_id
    start, end = _day(options["window_start"] or ""), _day(options["window_end"] or "")
    names = (options.get("collections") or "").split(",")
    specs = [BY_COLLECTION[name.strip()] for name in names if name.strip()] or list(ENTITIES)
    schema = options.get("db_schema") or "public"
    url = _database_url(options)
    database.migrate(url, schema)
    store = open_store(raw_url)
    engine = SparkEngine(session, f"{processed_url.rstrip('/')}/_spark_staging")
    tables = load_mapping_tables()
    summary = {}
    with database.connect(url, schema) as conn:
        for spec in specs:
            files = files_in_window(store, property_id, spec, start, end)
            with conn.transaction():
                epoch = suppression.epoch(conn)
                for location, kind, arrived in files:
                    ledger.record_landed_file(
                        conn, location, property_id, kind, spec.collection, 1, arrived
                    )
                pending = set(
                    ledger.pending_files(conn, property_id=property_id, collection=spec.collection)
                )
            locations = [location for location, _, _ in files if location in pending]
            result = engine.process_files(
                spec, raw_url, locations, conn, processed_url, tables, epoch
            )
            stats = result.stats
            summary[spec.collection] = {
                "files": result.files_processed,
                "inserted": stats.inserted,
                "updated": stats.updated,
                "unchanged": stats.unchanged,
                "stale": stats.stale,
                "rejected": result.rejected_written,
            }
            print(f"{property_id}/{spec.collection}: {summary[spec.collection]}", flush=True)
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    options = arguments(sys.argv[1:] if argv is None else argv)
    session = _session(options.get("spark_master"))
    run(options, session)


if __name__ == "__main__":
    main()

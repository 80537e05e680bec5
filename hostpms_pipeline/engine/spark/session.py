"""The Spark session's configuration, one place for Dagster's PySparkResource, the CLI and Glue."""

from __future__ import annotations

import os
import sys
from typing import Any

DEFAULT_MASTER = "local[*]"


def spark_config(master: str = DEFAULT_MASTER, connect_url: str | None = None) -> dict[str, Any]:
    """Settings every Spark session of the connector uses.

    UTC as the session time zone: timestamps cross between Arrow and Spark as UTC
    instants, so no value moves by a zone. Arrow batches of the local engine's size.
    """
    config: dict[str, Any] = {
        "spark.app.name": "hostpms-pipeline",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.enabled": "false",
    }
    if connect_url:
        config["spark.remote"] = connect_url
        return config
    config["spark.master"] = master
    if master.startswith("local"):
        config["spark.driver.memory"] = "2g"
    return config


def use_this_python_for_local_workers(config: dict[str, Any]) -> None:
    """Local workers run the interpreter the driver runs, with the same packages installed.

    PySpark takes the workers' interpreter from ``PYSPARK_PYTHON`` when the session
    starts (for UDFs the ``spark.pyspark.python`` setting is not read); a value the
    deployment set is kept.
    """
    if str(config.get("spark.master", "")).startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


def needs_local_java(config: dict[str, Any]) -> bool:
    return "spark.remote" not in config

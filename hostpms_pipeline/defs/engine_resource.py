"""The ``engine`` resource: which engine runs the map, reject, dedup and load steps.

``name`` is ``local`` (default) or ``spark``; with ``spark`` the steps run on the
Spark session of dagster-pyspark's (lazy) PySpark resource, started only when a
step first needs it, after checking for Java (``engine/spark/java.py``).
"""

from __future__ import annotations

from dagster import ConfigurableResource
from dagster_pyspark import LazyPySparkResource
from pydantic import Field

from hostpms_pipeline.engine.engines import EngineName, LocalEngine
from hostpms_pipeline.engine.spark.session import (
    needs_local_java,
    spark_config,
    use_this_python_for_local_workers,
)
from hostpms_pipeline.errors import ConfigurationError


class EngineResource(ConfigurableResource):
    """``local``: Arrow in this process; ``spark``: the same steps on Spark (docs/spark.md)."""

    name: EngineName = "local"
    # Where Spark tasks hand Arrow files to the driver: a folder or s3:// URL every
    # executor reaches (default: the processed bucket's _spark_staging/).
    staging_url: str | None = None
    pyspark: LazyPySparkResource = Field(
        default_factory=lambda: LazyPySparkResource(spark_config=spark_config())
    )

    def engine(self):
        if self.name == "local":
            return LocalEngine()
        from hostpms_pipeline.engine.spark.engine import SparkEngine
        from hostpms_pipeline.engine.spark.java import check_java

        if needs_local_java(self.pyspark.spark_config):
            check_java()
        use_this_python_for_local_workers(self.pyspark.spark_config)
        if not self.staging_url:
            raise ConfigurationError(
                "the spark engine needs a staging folder; set HOSTPMS_SPARK_STAGING_URL"
            )
        return SparkEngine(self.pyspark.spark_session, self.staging_url)

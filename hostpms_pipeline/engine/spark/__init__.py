"""The Spark engine: the local engine's steps, spread over a Spark cluster (docs/spark.md)."""

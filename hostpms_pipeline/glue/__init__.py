"""AWS Glue entry point: the Spark engine as a Glue job (docs/spark.md)."""

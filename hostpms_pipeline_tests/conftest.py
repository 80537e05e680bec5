"""Shared fixtures live in one module per real system under ``fixtures/``."""

pytest_plugins = [
    "hostpms_pipeline_tests.fixtures.postgres",
    "hostpms_pipeline_tests.fixtures.simulator",
    "hostpms_pipeline_tests.fixtures.s3",
    "hostpms_pipeline_tests.fixtures.cli",
]

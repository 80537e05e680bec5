"""Shared fixtures live in one module per real system under ``fixtures/``."""

import os

pytest_plugins = [
    "hostpms_pipeline_tests.fixtures.postgres",
    "hostpms_pipeline_tests.fixtures.simulator",
    "hostpms_pipeline_tests.fixtures.s3",
    "hostpms_pipeline_tests.fixtures.cli",
    "hostpms_pipeline_tests.fixtures.engines",
]

# A fixed GDPR key for the tests (the embedded default generates one under HOSTPMS_HOME;
# test_gdpr checks that path on its own).
os.environ.setdefault("HOSTPMS_GDPR_KEY", "test-gdpr-key-0123456789abcdef0123456789abcdef")

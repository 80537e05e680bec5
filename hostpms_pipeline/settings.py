"""Every setting the connector reads, in one place.

Nothing set means embedded defaults: the HostPMS simulator stands in for the API,
buckets are folders under ``HOSTPMS_HOME`` (default ``.hostpms/``), and PostgreSQL
is a private server started under the same folder. Setting a URL points each part
at the real thing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hostpms_pipeline import property_ids as property_id_rule

DEFAULT_PROPERTY_IDS = ("PT-LIS-001", "PT-POR-002", "ES-MAD-001")
# Credentials the embedded simulator accepts; never used against a real API.
SIMULATOR_CLIENT_ID = "simulator-client"
SIMULATOR_CLIENT_SECRET = "simulator-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOSTPMS_", extra="ignore")

    home: Path = Path(".hostpms")
    api_base_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    property_ids: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PROPERTY_IDS
    # The properties the embedded simulator knows; it answers 404 for any other, as HostPMS does.
    simulator_property_ids: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PROPERTY_IDS
    webhook_secret: SecretStr | None = None
    database_url: SecretStr | None = None
    db_schema: str = "public"
    raw_url: str | None = None
    processed_url: str | None = None
    use_secrets_manager: bool = False
    # DynamoDB table for webhook idempotency (AWS); unset: a PostgreSQL table.
    idempotency_table: str | None = None
    # EventBridge bus that gets one event per landed webhook (AWS); unset: none is sent.
    event_bus: str | None = None
    mapping_file: Path | None = None
    # Alerts: a Slack incoming webhook or an SNS topic; neither set, the log.
    alert_slack_webhook_url: SecretStr | None = None
    alert_sns_topic_arn: str | None = None
    http_timeout_seconds: float = 30.0
    page_limit: int = Field(default=100, ge=1, le=500)
    rate_limit_per_minute: int = Field(default=100, ge=1)  # HostPMS: per client and endpoint
    simulator_reservations_per_property: int = 200
    simulator_seed: int = 7
    # Share of simulated reservations made malformed or odd (rejects, unknown values).
    simulator_anomaly_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # Records one run reads from the raw bucket at most (memory: about 1 GB per 200,000);
    # the rest stays pending for the next run (`hostpms sync` runs again until none is).
    max_records_per_run: int = Field(default=200_000, ge=1)
    # Longest a sync may spend waiting between retries of a transient failure, in all;
    # then it fails with one line naming what stayed unreachable. 0: never retry.
    max_retry_wait_seconds: float = Field(default=600.0, ge=0.0, le=24 * 3600)
    # How long a Dagster run waits for another sync of the same property to finish
    # polling before it fails (`hostpms sync` skips such a property at once).
    property_lock_wait_seconds: float = Field(default=600.0, ge=0.0, le=24 * 3600)
    # First month a backfill can reach (HostPMS history to onboard).
    history_start: str = "2024-01-01"
    # GDPR: the key of the keyed hashes that stand for a person (suppression list, audit log,
    # Parquet guest_key); unset: Secrets Manager's hostpms/gdpr-key when use_secrets_manager,
    # else {home}/gdpr.key, generated once (docs/gdpr.md).
    gdpr_key: SecretStr | None = None
    # Raw objects and rejected records older than this are deleted by the retention job.
    retention_days: int = Field(default=7 * 365 + 2, ge=1)  # 7 years
    # Which engine runs map, reject, dedup and load: "local" (Arrow) or "spark" (docs/spark.md).
    engine: Literal["local", "spark"] = "local"
    # Spark: the master (local[*], spark://host:7077, yarn, ...) or a Spark Connect URL
    # (sc://host:15002), and where its tasks stage Arrow files (default {processed}/_spark_staging).
    spark_master: str = "local[*]"
    spark_connect_url: str | None = None
    spark_staging_url: str | None = None

    @field_validator("property_ids", "simulator_property_ids", mode="before")
    @classmethod
    def _split_property_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("property_ids", "simulator_property_ids")
    @classmethod
    def _check_property_ids(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        source = f"HOSTPMS_{info.field_name.upper()}"
        return tuple(property_id_rule.check(part, source=source) for part in value)

    @property
    def uses_simulator(self) -> bool:
        return self.api_base_url is None

    @property
    def uses_embedded_postgres(self) -> bool:
        return self.database_url is None

    @property
    def resolved_raw_url(self) -> str:
        return self.raw_url or str((self.home / "raw").absolute())

    @property
    def resolved_processed_url(self) -> str:
        return self.processed_url or str((self.home / "processed").absolute())

    @property
    def resolved_spark_staging_url(self) -> str:
        return self.spark_staging_url or f"{self.resolved_processed_url.rstrip('/')}/_spark_staging"

    @property
    def postgres_data_dir(self) -> Path:
        return (self.home / "postgres").absolute()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

"""What differs between stages, and the PRD's numbers that every stage shares.

One AWS account per stage: the per-property secret names (``hostpms/{propertyId}/...``)
carry no stage, so two stages in one account would share them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

from aws_cdk import aws_logs as logs

REGION = "eu-west-1"  # TR-3
# Synthesizes with no AWS account: a real deploy names its account (`-c account=...`),
# and CDK refuses to deploy a template for another account than the credentials'.
PLACEHOLDER_ACCOUNT = "111111111111"
# Fixed rather than looked up, so that synth never calls AWS.
AVAILABILITY_ZONES = ("eu-west-1a", "eu-west-1b")


@dataclass(frozen=True)
class Retention:
    """The raw and processed buckets' lifecycle (PRD: 90 d Standard → IA → Glacier → 7 y)."""

    infrequent_access_after: timedelta = timedelta(days=90)
    glacier_after: timedelta = timedelta(days=365)
    expire_after: timedelta = timedelta(days=7 * 365)
    noncurrent_versions_kept: timedelta = timedelta(days=30)  # raw is versioned


@dataclass(frozen=True)
class Thresholds:
    """PRD, Monitoring & Alerting: the alarms' thresholds."""

    webhook_p99_latency: timedelta = timedelta(seconds=1)  # warning
    webhook_error_rate_percent: float = 5.0  # critical
    consecutive_polling_failures: int = 2  # critical when more than this
    etl_duration: timedelta = timedelta(minutes=15)  # warning
    sync_lag: timedelta = timedelta(hours=2)  # critical
    rds_cpu_percent: float = 80.0  # warning
    lambda_errors_in_5_minutes: int = 10  # critical when more than this


@dataclass(frozen=True)
class StageConfig:
    name: str
    account: str = PLACEHOLDER_ACCOUNT
    region: str = REGION
    availability_zones: tuple[str, ...] = AVAILABILITY_ZONES
    # RDS: the PRD's shared db.t4g.large; Multi-AZ in production only.
    db_instance_type: str = "t4g.large"
    db_multi_az: bool = False
    db_allocated_storage_gib: int = 50
    db_max_allocated_storage_gib: int = 500
    db_backup_days: int = 7
    db_credentials_rotation: timedelta = timedelta(days=30)
    # Dagster on Fargate: vCPU units (1024 = 1 vCPU) and MiB per task.
    webserver_cpu: int = 512
    webserver_memory_mib: int = 1024
    daemon_cpu: int = 512
    daemon_memory_mib: int = 1024
    run_cpu: int = 1024
    run_memory_mib: int = 4096  # a run reads up to 200,000 records (~1 GB) at once
    # Webhooks: API Gateway throttle (HostPMS bursts after an outage) and the WAF rules.
    api_rate_per_second: int = 200
    api_burst: int = 400
    waf_requests_per_ip_per_5_minutes: int = 3000  # PRD load test: 1,000 webhooks/min
    # HostPMS sends from EU data centres; any other origin is blocked.
    webhook_source_countries: tuple[str, ...] = (
        "PT", "ES", "IE", "FR", "DE", "NL", "BE", "IT", "SE", "FI", "PL", "AT", "DK",
    )  # fmt: skip
    # Largest body the WAF lets through; a HostPMS event carries one record (a few KB).
    # 64 KB is the most WAF inspects on API Gateway; the receiver's own limit is 1 MiB.
    max_body_bytes: int = 64 * 1024
    log_retention: logs.RetentionDays = logs.RetentionDays.THREE_MONTHS
    # Connected properties (HOSTPMS_PROPERTY_IDS): add a hotel here and deploy (first hotel).
    property_ids: tuple[str, ...] = ()
    alarm_emails: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    retention: Retention = field(default_factory=Retention)

    def resource_name(self, part: str) -> str:
        """Names that people read in the console: ``hostpms-<stage>-<part>``."""
        return f"hostpms-{self.name}-{part}"


STAGES: dict[str, StageConfig] = {
    "staging": StageConfig(name="staging", db_instance_type="t4g.medium", db_backup_days=3),
    "production": StageConfig(name="production", db_multi_az=True, db_backup_days=14),
}


def stage_config(
    name: str, account: str | None = None, alarm_email: str | None = None
) -> StageConfig:
    """A stage's config, with the account and alarm address given on the command line."""
    config = STAGES[name]
    if account:
        config = replace(config, account=account)
    if alarm_email:
        config = replace(config, alarm_emails=(alarm_email,))
    return config

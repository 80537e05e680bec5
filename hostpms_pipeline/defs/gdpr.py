"""GDPR in Dagster: the erasure job (launchable from the UI) and the daily retention job.

The erasure job's config takes the person's *keyed hash* (``hostpms gdpr hash --email E``
prints it), never the clear identifier: run configs are stored by Dagster for good and
shown to everyone with UI access, and must hold no personal data.
"""

import re
from datetime import UTC, datetime, timedelta

from dagster import Config, Failure, OpExecutionContext, ScheduleDefinition, job, op
from pydantic import Field

from hostpms_pipeline.defs.resources import ObjectStoreResource, PostgresResource
from hostpms_pipeline.gdpr import audit
from hostpms_pipeline.gdpr.erasure import PersonRef, erase
from hostpms_pipeline.gdpr.keys import current_hasher
from hostpms_pipeline.gdpr.retention import sweep
from hostpms_pipeline.settings import get_settings

_HASH = re.compile(r"^[0-9a-f]{64}$")


class ErasureConfig(Config):
    """Exactly one of the person's keyed hashes, as ``hostpms gdpr hash`` prints it."""

    email_hash: str | None = Field(default=None, description="hostpms gdpr hash --email E")
    nif_hash: str | None = Field(default=None, description="hostpms gdpr hash --nif N")
    guest_id_hash: str | None = Field(
        default=None, description="hostpms gdpr hash --guest-id G --property-id P"
    )

    def person(self) -> PersonRef:
        # Checked here rather than by a pydantic validator, whose error would echo the value.
        if any(v is not None and not _HASH.match(v) for v in (self.email_hash, self.nif_hash,
                                                              self.guest_id_hash)):  # fmt: skip
            raise Failure(
                "give the keyed hash (64 lowercase hex digits from `hostpms gdpr hash`), never a"
                " clear value",
                allow_retries=False,
            )
        given = [
            PersonRef(kind, value)  # type: ignore[arg-type]
            for kind, value in (
                ("email", self.email_hash),
                ("nif", self.nif_hash),
                ("guest_id", self.guest_id_hash),
            )  # fmt: skip
            if value
        ]
        if len(given) != 1:
            raise Failure(
                "give exactly one of email_hash, nif_hash, guest_id_hash", allow_retries=False
            )
        return given[0]


@op(description="Erase one person from PostgreSQL, Parquet and the raw store (docs/gdpr.md).")
def erase_person(
    context: OpExecutionContext,
    config: ErasureConfig,
    postgres: PostgresResource,
    raw_store: ObjectStoreResource,
    processed_store: ObjectStoreResource,
) -> None:
    report = erase(
        postgres.connect,
        raw_store.open(),
        processed_store.url,
        current_hasher(),
        config.person(),
        audit.dagster_actor(context.run_id),
    )
    context.log.info(f"erasure {report.request_id}: {report.counts}")  # counts only


@job(
    name="hostpms_gdpr_erasure_job",
    description="Right to erasure for one person (config: a keyed hash).",
)
def hostpms_gdpr_erasure_job() -> None:
    erase_person()


class RetentionConfig(Config):
    days: int | None = Field(default=None, description="Default: HOSTPMS_RETENTION_DAYS (7 years).")


@op(description="Delete raw objects and rejected records older than the retention.")
def retention_sweep(
    context: OpExecutionContext,
    config: RetentionConfig,
    postgres: PostgresResource,
    raw_store: ObjectStoreResource,
) -> None:
    days = config.days or get_settings().retention_days
    counts = sweep(
        postgres.connect, raw_store.open(), timedelta(days=days), datetime.now(UTC),
        audit.dagster_actor(context.run_id),
    )  # fmt: skip
    context.log.info(f"retention: {counts}")


@job(name="hostpms_gdpr_retention_job", description="Retention: delete what is older than it.")
def hostpms_gdpr_retention_job() -> None:
    retention_sweep()


hostpms_gdpr_daily_retention = ScheduleDefinition(
    name="hostpms_gdpr_daily_retention",
    job=hostpms_gdpr_retention_job,
    cron_schedule="30 3 * * *",
    execution_timezone="Europe/Lisbon",
    description="Every night, delete raw objects and rejected records past the retention.",
)

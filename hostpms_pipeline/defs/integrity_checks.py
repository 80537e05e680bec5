"""The raw files set aside as unreadable, reported after every load (see ``lake/raw_integrity``)."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
    asset_check,
)

from hostpms_pipeline.defs.keys import MAPPED_BOOKINGS
from hostpms_pipeline.defs.resources import PostgresResource
from hostpms_pipeline.lake import raw_integrity


@asset_check(
    asset=MAPPED_BOOKINGS,
    description=(
        "No raw file is set aside as unreadable (missing, changed since it landed, or not a "
        "HostPMS page). Each one is listed with its reason; `hostpms refetch PROPERTY_ID` "
        "fetches its window again."
    ),
)
def raw_files_intact(
    context: AssetCheckExecutionContext, postgres: PostgresResource
) -> AssetCheckResult:
    with postgres.connect() as conn:
        entries = raw_integrity.open_entries(conn)
    for entry in entries:
        context.log.warning(
            f"{entry.property_id}: raw file {entry.location} set aside ({entry.reason}); "
            f"fetch its window again with `{raw_integrity.refetch_command(entry.property_id)}`"
        )
    return AssetCheckResult(
        passed=not entries,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "set_aside": len(entries),
            "files": MetadataValue.json(
                [
                    {"property_id": e.property_id, "location": e.location, "reason": e.reason}
                    for e in entries[:50]
                ]
            ),
        },
    )


integrity_checks = [raw_files_intact]

"""``hostpms refetch PROPERTY_ID``: fetch again the windows of the raw files set aside as damaged."""

from __future__ import annotations

from collections.abc import Callable

from hostpms_pipeline.defs.resources import HostPMSResource, PostgresResource
from hostpms_pipeline.ingest import polling
from hostpms_pipeline.lake import raw_integrity
from hostpms_pipeline.lake.storage import open_store
from hostpms_pipeline.settings import Settings, get_settings
from hostpms_pipeline.warehouse import property_lock

Echo = Callable[[str], None]


def _resources(settings: Settings) -> tuple[PostgresResource, HostPMSResource]:
    """The resources as plain objects (their settings resolved now, not as ``EnvVar``)."""
    postgres = PostgresResource(
        url=settings.database_url.get_secret_value() if settings.database_url else None,
        db_schema=settings.db_schema,
    )
    hostpms = HostPMSResource(
        base_url=settings.api_base_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret.get_secret_value() if settings.client_secret else None,
        use_secrets_manager=settings.use_secrets_manager,
        page_limit=settings.page_limit,
        timeout_seconds=settings.http_timeout_seconds,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        postgres=postgres,
    )
    return postgres, hostpms


def refetch(property_id: str, echo: Echo) -> bool:
    """Land each set-aside file's window again, then load it; True if all went well."""
    settings = get_settings()
    postgres, hostpms = _resources(settings)
    with postgres.connect() as conn:
        entries = raw_integrity.open_entries(conn, property_id)
    if not entries:
        echo(f"{property_id}: no raw file is set aside")
        return True
    known = [e for e in entries if e.window_start is not None and e.window_end is not None]
    unknown = [e for e in entries if e not in known]
    store = open_store(settings.resolved_raw_url)
    with property_lock.hold(postgres.connect, property_id) as ours:
        if not ours:
            echo(f"{property_id}: SKIPPED: {property_lock.busy_line(property_id)}")
            return False
        with hostpms.client(property_id) as client:
            for entry in known:
                result = polling.sync_window(
                    client, store, postgres.connect, property_id,
                    entry.window_start, entry.window_end, entry.collection,
                )  # fmt: skip
                echo(
                    f"{property_id}: {entry.location}: fetched {result.records} {entry.collection} "
                    f"updated {entry.window_start:%Y-%m-%d %H:%M:%S} to "
                    f"{entry.window_end:%Y-%m-%d %H:%M:%S} UTC again"
                )
    with postgres.connect() as conn:
        raw_integrity.mark_refetched(conn, [entry.location for entry in known])
    for entry in unknown:
        echo(
            f"{property_id}: {entry.location}: no window is known for it (landed before "
            f"digests were kept, or a webhook drop): run `hostpms resync {property_id}`"
        )
    return not unknown

"""Each property's sync status (``hostpms status``, and the ``property_status`` check in the UI).

Facts come from PostgreSQL (checkpoints, the raw-file ledger, the entity tables, rejected
records, the receiver's outcome counts, the properties registry) and, for runs, from the
Dagster instance. Only counts, ids and times: never guest data or secrets.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from dagster import DagsterInstance
from psycopg import sql

from hostpms_pipeline.defs.alerts import (
    CONSECUTIVE_FAILURES_CRITICAL,
    FAILURES_LOOKED_AT,
    SYNC_LAG_CRITICAL,
    consecutive_failures,
    failures_in_a_row,
)
from hostpms_pipeline.defs.schedules import PROPERTY_TAG
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.entities.schema import UNKNOWN
from hostpms_pipeline.entities.spec import EntitySpec, Mapped
from hostpms_pipeline.warehouse import properties, sync_reports

DAY = timedelta(hours=24)


@dataclass
class PropertyStatus:
    property_id: str
    state: str  # "connected" (synced) or "disconnected"
    sources: list[str]  # "settings" (HOSTPMS_PROPERTY_IDS), "connect" (the properties table)
    last_sync_at: datetime | None  # when its polling last completed, its stalest collection
    lag_seconds: float | None  # now - last_sync_at
    consecutive_failures: int
    records_24h: dict[str, int] = field(default_factory=dict)  # rows written, per table
    unknown_values: dict[str, int] = field(default_factory=dict)  # rows with an unmapped value
    rejects: dict[str, int] = field(default_factory=dict)  # rejected records kept, per collection
    webhooks_24h: dict[str, int] = field(default_factory=dict)  # receiver answers by outcome
    pending_raw_files: int = 0
    subscription: dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        found = []
        if self.state == "connected":
            if self.last_sync_at is None:
                found.append("never synced")
            elif (
                self.lag_seconds is not None
                and self.lag_seconds > SYNC_LAG_CRITICAL.total_seconds()
            ):
                found.append(f"lag {self.lag_seconds / 3600:.1f} h")
            if self.consecutive_failures >= CONSECUTIVE_FAILURES_CRITICAL:
                found.append(f"{self.consecutive_failures} failed runs in a row")
            if self.subscription.get("state") == "failed":
                found.append("webhook subscription failed")
        return found

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["last_sync_at"] = self.last_sync_at.isoformat() if self.last_sync_at else None
        body["lag_seconds"] = round(self.lag_seconds, 1) if self.lag_seconds is not None else None
        body["problems"] = self.problems
        return body


def collect(
    conn: psycopg.Connection,
    instance: DagsterInstance | None,
    configured: Iterable[str],
    now: datetime | None = None,
) -> list[PropertyStatus]:
    """Every property synced (settings and connected), then the disconnected ones."""
    now = now or datetime.now(UTC)
    configured = list(configured)
    with conn.transaction():
        active = properties.active_property_ids(conn, configured)
        registered = {row.property_id: row for row in properties.all_registered(conn)}
        per_table = {spec.table: _table_facts(conn, spec, now) for spec in ENTITIES}
        rejects = _rejects(conn)
        webhooks = _webhook_outcomes(conn, now)
        last_sync = _last_sync(conn)
        pending = dict(
            conn.execute(
                "SELECT property_id, count(*) FROM raw_files WHERE processed_at IS NULL"
                " GROUP BY property_id"
            ).fetchall()
        )
    disconnected = [p for p, row in registered.items() if not row.connected and p not in active]
    statuses = []
    for property_id in [*active, *disconnected]:
        row = registered.get(property_id)
        synced_at = last_sync.get(property_id)
        sources = (["settings"] if property_id in configured else []) + (
            ["connect"] if row is not None and row.client_id is not None else []
        )
        statuses.append(
            PropertyStatus(
                property_id=property_id,
                state="connected" if property_id in active else "disconnected",
                sources=sources,
                last_sync_at=synced_at,
                lag_seconds=(now - synced_at).total_seconds() if synced_at else None,
                consecutive_failures=_consecutive_failures(conn, instance, property_id),
                records_24h={t: f.get(property_id, (0, 0))[0] for t, f in per_table.items()},
                unknown_values={t: f.get(property_id, (0, 0))[1] for t, f in per_table.items()},
                rejects={
                    s.collection: rejects.get((property_id, s.collection), 0) for s in ENTITIES
                },
                webhooks_24h=webhooks.get(property_id, {}),
                pending_raw_files=pending.get(property_id, 0),
                subscription=_subscription(row),
            )
        )
    return statuses


def _table_facts(
    conn: psycopg.Connection, spec: EntitySpec, now: datetime
) -> dict[str, tuple[int, int]]:
    """Per hotel: rows written in the last 24 hours, rows holding a value no mapping knows."""
    mapped = [column.name for column in spec.columns if isinstance(column.value, Mapped)]
    unknown = (
        sql.SQL(" OR ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.Literal(UNKNOWN)) for c in mapped
        )
        if mapped
        else sql.SQL("false")
    )
    query = sql.SQL(
        "SELECT hotel_id, count(*) FILTER (WHERE synced_at >= %s), count(*) FILTER (WHERE {})"
        " FROM {} GROUP BY hotel_id"
    ).format(unknown, sql.Identifier(spec.table))
    return {hotel: (recent, odd) for hotel, recent, odd in conn.execute(query, (now - DAY,))}


def _rejects(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    rows = conn.execute(
        "SELECT hotel_id, collection, count(*) FROM rejected_records GROUP BY hotel_id, collection"
    )
    return {(hotel, collection): count for hotel, collection, count in rows}


def _webhook_outcomes(conn: psycopg.Connection, now: datetime) -> dict[str, dict[str, int]]:
    rows = conn.execute(
        "SELECT property_id, outcome, sum(deliveries)::bigint FROM webhook_outcomes"
        " WHERE hour >= date_trunc('hour', %s::timestamptz) GROUP BY property_id, outcome"
        " ORDER BY outcome",
        (now - DAY,),
    )
    found: dict[str, dict[str, int]] = {}
    for property_id, outcome, count in rows:
        found.setdefault(property_id, {})[outcome] = count
    return found


def _subscription(row: properties.RegisteredProperty | None) -> dict[str, Any]:
    if row is None:
        return {"state": "none"}
    return {
        "state": row.subscription_state,
        "subscription_id": row.subscription_id,
        "url": row.webhook_url,
    }


def _last_sync(conn: psycopg.Connection) -> dict[str, datetime]:
    """Per property, when its checkpoints last moved with no pagination under way, the
    stalest collection's (the moment the ``every_property_synced_recently`` check uses)."""
    rows = conn.execute(
        "SELECT property_id, min(updated_at) FROM sync_checkpoints WHERE cursor IS NULL"
        " GROUP BY property_id"
    )
    return dict(rows.fetchall())


def _consecutive_failures(
    conn: psycopg.Connection, instance: DagsterInstance | None, property_id: str
) -> int:
    """Dagster runs and `hostpms sync`s together (the command runs no Dagster run)."""
    cli = sync_reports.outcomes(conn, property_id, FAILURES_LOOKED_AT)
    if instance is None:
        return failures_in_a_row(cli)
    return consecutive_failures(instance, property_id, PROPERTY_TAG, cli)

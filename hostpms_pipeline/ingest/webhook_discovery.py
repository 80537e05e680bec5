"""Finding webhook drops in the raw store and entering them in the raw-file ledger.

The receiver writes each event under a key that starts with its arrival time
(``.../webhooks/{event}/{YYYYMMDDTHHMMSSffffffZ}_{id}.json``), so keys sort by time
and a scan lists from a time onwards (S3's ``StartAfter``): its cost grows with
what arrived since, never with everything ever landed. Each scan re-lists a
look-back before the previous one, which catches objects that became visible late
(an upload's key carries the time it started) or came from a receiver whose clock
is behind. The ledger, not the scan, decides what is new, so overlapping scans
never enter a drop twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

import psycopg

from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.lake.raw_layout import arrival_time, webhook_keys_since, webhook_prefix
from hostpms_pipeline.lake.storage import ObjectInfo, ObjectStore
from hostpms_pipeline.warehouse import ledger

LOOKBACK = timedelta(minutes=15)
HOUR_PREFIX_FORMAT = "%Y%m%dT%H"


def list_drops(
    store: ObjectStore, property_id: str, spec: EntitySpec, since: datetime | None
) -> Iterator[ObjectInfo]:
    """Drops of the entity's events for the property that arrived at or after ``since`` (all if None)."""
    for event in spec.events:
        start_after = webhook_keys_since(property_id, event, since) if since else None
        yield from store.list(webhook_prefix(property_id, event), start_after=start_after)


def record_new_drops(
    store: ObjectStore,
    conn: psycopg.Connection,
    property_id: str,
    spec: EntitySpec,
    drops: Iterable[ObjectInfo],
) -> list[str]:
    """Enter the drops the ledger does not hold yet; returns their locations."""
    by_location = {store.location(info.key): info for info in drops}
    known = ledger.recorded_locations(conn, list(by_location))
    new = [location for location in by_location if location not in known]
    with conn.transaction():
        for location in new:
            ledger.record_landed_file(
                conn,
                location=location,
                property_id=property_id,
                kind="webhook",
                collection=spec.collection,
                record_count=1,
                landed_at=arrival_time(by_location[location].key),
            )
    return new


def discover(
    store: ObjectStore,
    conn: psycopg.Connection,
    property_ids: Iterable[str],
    since: datetime | None,
    entities: Iterable[EntitySpec] = ENTITIES,
) -> dict[str, list[str]]:
    """New drops per property, of every entity, that arrived since ``since - LOOKBACK``
    (everything when since is None)."""
    start = since - LOOKBACK if since else None
    entities = list(entities)
    return {
        property_id: [
            location
            for spec in entities
            for location in record_new_drops(
                store, conn, property_id, spec, list_drops(store, property_id, spec, start)
            )
        ]
        for property_id in property_ids
    }


def catch_up(
    store: ObjectStore, conn: psycopg.Connection, property_id: str, spec: EntitySpec
) -> list[str]:
    """New drops of the entity's events since the property's newest recorded one of the
    entity (all of them the first time).

    Every load runs this first, so a deployment without the sensor still loses no drop.
    """
    since = ledger.latest_landing(conn, property_id, "webhook", spec.collection)
    return discover(store, conn, [property_id], since, [spec])[property_id]

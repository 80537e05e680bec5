"""Where and how an accepted event lands in the raw store.

Key: ``hostpms/{property_id}/webhooks/{event}/{YYYYMMDDTHHMMSSffffffZ}_{event_id}.json``,
the PRD's ``webhooks/{event}/{timestamp}.json`` with the event id appended: keys sort
by arrival and never collide, so a sensor can list a time window by key prefix
(``.../webhooks/reservation.updated/20261124T13``).

Body: one line of JSON shaped like a polling page (``transform.read_landed`` reads
both), with the event's one record as ``data``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from hostpms_pipeline.engine.schema import SOURCE
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.ingest.polling import KEY_TIMESTAMP_FORMAT, RAW_PREFIX
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.webhooks.verification import VerifiedEvent


def webhook_prefix(property_id: str, event_type: str) -> str:
    """Every landed event of one type for one property starts with this."""
    return f"{RAW_PREFIX}/{property_id}/webhooks/{event_type}/"


def webhook_key(property_id: str, event_type: str, event_id: str, received_at: datetime) -> str:
    stamp = received_at.astimezone(UTC).strftime(KEY_TIMESTAMP_FORMAT)
    return f"{webhook_prefix(property_id, event_type)}{stamp}_{event_id}.json"


def serialize_event(verified: VerifiedEvent, received_at: datetime) -> bytes:
    event = verified.event
    return orjson.dumps(
        {
            "kind": "webhook",
            "source": SOURCE,
            "property_id": event.property_id,
            "collection": verified.collection,
            "received_at": contract.format_timestamp(received_at),
            "event_id": event.id,
            "event_type": event.type,
            "event_created_at": contract.format_timestamp(event.created_at),
            "data": [verified.record],
        }
    )


def land_event(store: ObjectStore, verified: VerifiedEvent, received_at: datetime) -> str:
    """Durably store the event; returns its location. Raises ``StorageError``."""
    event = verified.event
    key = webhook_key(event.property_id, event.type, event.id, received_at)
    return store.put(key, serialize_event(verified, received_at))

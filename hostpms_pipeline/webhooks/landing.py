"""How an accepted event lands in the raw store (where: ``lake/raw_layout.py``).

Body: one line of JSON shaped like a polling page (``engine.reading`` reads both),
with the event's one record as ``data``.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from hostpms_pipeline.entities.row_ids import SOURCE
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.lake.raw_layout import webhook_key
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.webhooks.verification import VerifiedEvent


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
            # No record when a redaction dropped it (an erased guest's profile; docs/gdpr.md).
            "data": [verified.record] if verified.record is not None else [],
        }
    )


def land_event(store: ObjectStore, verified: VerifiedEvent, received_at: datetime) -> str:
    """Durably store the event; returns its location. Raises ``StorageError``."""
    event = verified.event
    key = webhook_key(event.property_id, event.type, event.id, received_at)
    return store.put(key, serialize_event(verified, received_at))

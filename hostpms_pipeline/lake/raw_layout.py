"""Where raw HostPMS data lies in the raw bucket: one layout for polled pages and webhook drops.

    hostpms/{property_id}/polling/{YYYYMMDDTHHMMSSffffffZ}_{collection}.json
    hostpms/{property_id}/webhooks/{event}/{YYYYMMDDTHHMMSSffffffZ}_{event_id}.json

The PRD's ``polling/{timestamp}.json`` and ``webhooks/{event}/{timestamp}.json``, with
the collection and the event id appended: keys start with the arrival time, so they
sort by time (a scan can list from a moment onwards) and never collide.
"""

from __future__ import annotations

from datetime import UTC, datetime

RAW_PREFIX = "hostpms"
KEY_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(KEY_TIMESTAMP_FORMAT)


def polling_key(property_id: str, collection: str, received_at: datetime) -> str:
    return f"{RAW_PREFIX}/{property_id}/polling/{_stamp(received_at)}_{collection}.json"


def webhook_prefix(property_id: str, event_type: str) -> str:
    """Every landed event of one type for one property starts with this."""
    return f"{RAW_PREFIX}/{property_id}/webhooks/{event_type}/"


def webhook_key(property_id: str, event_type: str, event_id: str, received_at: datetime) -> str:
    return f"{webhook_prefix(property_id, event_type)}{_stamp(received_at)}_{event_id}.json"


def webhook_keys_since(property_id: str, event_type: str, since: datetime) -> str:
    """The key a listing starts after to find the drops that arrived at or after ``since``."""
    return webhook_prefix(property_id, event_type) + _stamp(since)


def arrival_time(key: str) -> datetime:
    """When the raw file arrived, read back from its key."""
    stamp = key.rsplit("/", 1)[-1].split("_", 1)[0]
    return datetime.strptime(stamp, KEY_TIMESTAMP_FORMAT).replace(tzinfo=UTC)

"""One EventBridge event per landed webhook, for consumers beyond the pipeline.

On when ``HOSTPMS_EVENT_BUS`` names a bus, off otherwise. The event is sent after the
delivery has durably landed in the raw store and is best effort: a failure is logged
(one line that a CloudWatch metric filter counts) and counted here, and the delivery is
still answered 2xx, because the event *is* landed and a retry by HostPMS would add nothing.

The event names the delivery, never its data: property, event type, event id, times and
the raw object's location. Guest data (names, emails, phones, NIF) stays in the raw bucket.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.settings import Settings, get_settings
from hostpms_pipeline.webhooks.verification import VerifiedEvent

log = logging.getLogger(__name__)

SOURCE = "hostpms.webhooks"
DETAIL_TYPE = "HostPMS Webhook Landed"
# The metric filter in infra/ matches this text: change both together.
FAILURE_MESSAGE = "webhook event landed but not published to EventBridge"
# The sender waits 10 s for the whole delivery, landing included: fail fast.
_CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2})


class PublishError(Exception):
    """EventBridge did not take the event; the cause is chained or named."""


class EventPublisher(Protocol):
    def announce(self, verified: VerifiedEvent, location: str, received_at: datetime) -> bool: ...


def landed_detail(verified: VerifiedEvent, location: str, received_at: datetime) -> dict[str, str]:
    """What consumers learn of a landed event: where it is, not what it says."""
    event = verified.event
    return {
        "property_id": event.property_id,
        "event_type": event.type,
        "event_id": event.id,
        "collection": verified.collection,
        "event_created_at": contract.format_timestamp(event.created_at),
        "received_at": contract.format_timestamp(received_at),
        "location": location,
    }


@dataclass
class EventBridgePublisher:
    bus_name: str
    client: Any = None
    failures: int = 0  # events landed but not published, since this publisher was made
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def publish(self, verified: VerifiedEvent, location: str, received_at: datetime) -> None:
        """Send the event; raises :class:`PublishError`."""
        if self.client is None:  # made on first use: building the receiver needs no AWS
            self.client = boto3.client("events", config=_CLIENT_CONFIG)
        entry = {
            "EventBusName": self.bus_name,
            "Source": SOURCE,
            "DetailType": DETAIL_TYPE,
            "Time": received_at,
            "Detail": orjson.dumps(landed_detail(verified, location, received_at)).decode(),
        }
        try:
            response = self.client.put_events(Entries=[entry])
        except (ClientError, BotoCoreError) as error:
            raise PublishError(type(error).__name__) from error
        if response.get("FailedEntryCount"):
            # PutEvents answers 200 with a per-entry error code for entries it refused.
            raise PublishError(str(response["Entries"][0].get("ErrorCode", "FailedEntry")))

    def announce(self, verified: VerifiedEvent, location: str, received_at: datetime) -> bool:
        """Publish, never raising: False (logged and counted) when the event was not sent."""
        try:
            self.publish(verified, location, received_at)
        except Exception as error:  # noqa: BLE001 - the delivery is landed whatever fails here
            with self._lock:
                self.failures += 1
            # The error's type or code only: a message could quote the entry.
            reason = str(error) if isinstance(error, PublishError) else type(error).__name__
            log.warning("%s: event %s (%s)", FAILURE_MESSAGE, verified.event.id, reason)
            return False
        return True


def open_event_publisher(settings: Settings | None = None) -> EventBridgePublisher | None:
    """The publisher for ``HOSTPMS_EVENT_BUS``, or None when it is unset (the default)."""
    settings = settings or get_settings()
    return EventBridgePublisher(settings.event_bus) if settings.event_bus else None

"""One JSON line per webhook request, without PII or secrets.

Only values the receiver has checked are logged: the path's property and event
type once they passed ``check_path``, the event id once the body is verified. The
body, the signature and error details from the body are never logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from hostpms_pipeline.webhooks.outcomes import HTTP_STATUS, Outcome

access_log = logging.getLogger("hostpms_pipeline.webhooks.access")


@dataclass
class RequestRecord:
    outcome: Outcome = Outcome.INTERNAL_ERROR  # until the request ends otherwise
    property_id: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    latency_ms: float = 0.0

    def line(self) -> str:
        # Spelled out rather than dataclasses.asdict, which deep-copies: one line per request.
        fields = {
            "message": "webhook delivery",
            "outcome": self.outcome,
            "property_id": self.property_id,
            "event_type": self.event_type,
            "event_id": self.event_id,
            "latency_ms": round(self.latency_ms, 3),
            "status": HTTP_STATUS[self.outcome],
        }
        return orjson.dumps(fields).decode()

    def emit(self) -> None:
        level = logging.WARNING if HTTP_STATUS[self.outcome] >= 500 else logging.INFO
        access_log.log(level, self.line())

"""Every way a webhook delivery can end: its metrics label, HTTP status and error code.

The outcome is the ``outcome`` label of the metrics, the ``outcome`` of the access
log line and, for refusals, the ``error`` of the JSON body. HostPMS retries any
answer other than 2xx, so only outcomes after which a retry cannot help are
final refusals (4xx); outcomes where a retry may succeed are 409/503.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    UNKNOWN_EVENT = "unknown_event"
    UNKNOWN_PROPERTY = "unknown_property"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    MISSING_SIGNATURE = "missing_signature"
    BAD_SIGNATURE = "bad_signature"
    INVALID_TIMESTAMP = "invalid_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    MALFORMED_JSON = "malformed_json"
    INVALID_EVENT = "invalid_event"
    PATH_MISMATCH = "path_mismatch"
    IN_FLIGHT = "in_flight"
    SECRETS_UNAVAILABLE = "secrets_unavailable"
    IDEMPOTENCY_UNAVAILABLE = "idempotency_unavailable"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    NOT_FOUND = "not_found"  # a path that is no endpoint at all
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CLIENT_DISCONNECTED = "client_disconnected"  # the sender hung up mid-body: nothing to answer
    INTERNAL_ERROR = "internal_error"  # a bug: logged with its traceback by the server


HTTP_STATUS: dict[Outcome, int] = {
    Outcome.ACCEPTED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.UNKNOWN_EVENT: 404,
    Outcome.UNKNOWN_PROPERTY: 404,
    Outcome.PAYLOAD_TOO_LARGE: 413,
    Outcome.MISSING_SIGNATURE: 401,
    Outcome.BAD_SIGNATURE: 401,
    Outcome.INVALID_TIMESTAMP: 401,
    Outcome.STALE_TIMESTAMP: 401,
    Outcome.MALFORMED_JSON: 400,
    Outcome.INVALID_EVENT: 400,
    Outcome.PATH_MISMATCH: 400,
    Outcome.IN_FLIGHT: 409,  # the same event is being landed right now: retry later
    Outcome.SECRETS_UNAVAILABLE: 503,
    Outcome.IDEMPOTENCY_UNAVAILABLE: 503,
    Outcome.STORAGE_UNAVAILABLE: 503,
    Outcome.NOT_FOUND: 404,
    Outcome.METHOD_NOT_ALLOWED: 405,
    Outcome.CLIENT_DISCONNECTED: 499,  # nginx's convention; no one is left to read it
    Outcome.INTERNAL_ERROR: 500,
}

# Answers asking HostPMS to come back: it backs off on its own, this is a hint.
RETRY_AFTER_SECONDS: dict[Outcome, int] = {
    Outcome.IN_FLIGHT: 5,
    Outcome.SECRETS_UNAVAILABLE: 30,
    Outcome.IDEMPOTENCY_UNAVAILABLE: 30,
    Outcome.STORAGE_UNAVAILABLE: 30,
}


class Refusal(Exception):
    """A delivery that is not landed. ``detail`` goes to the sender: never PII or secrets."""

    def __init__(self, outcome: Outcome, detail: str, *, event_id: str | None = None) -> None:
        super().__init__(f"{outcome}: {detail}")
        self.outcome = outcome
        self.detail = detail
        self.event_id = event_id  # known once the body has been verified and parsed

    @property
    def status(self) -> int:
        return HTTP_STATUS[self.outcome]

"""The HostPMS v3 API as this project assumes it (``shared/hostpms-api-contract.md``).

The requirements fix the endpoints, the OAuth flow, the webhook signature and the
reservation's shape; pagination, incremental filters, rate-limit headers, the
webhook envelope and the other record types are assumptions. Every one of them
lives here, so that adjusting to the real API is a change to this module. The
client, the webhook receiver and the simulator all read from it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

import msgspec
from pydantic import BaseModel, ConfigDict, Field

DEFAULT_BASE_URL = "https://api.hostpms.com/v3"

# --- OAuth 2.0 client credentials (TR-1) -----------------------------------
TOKEN_PATH = "/oauth/token"
DEFAULT_TOKEN_LIFETIME_SECONDS = 3600
ERROR_INVALID_CLIENT = "invalid_client"  # wrong credentials: never retried
ERROR_INVALID_TOKEN = "invalid_token"  # expired or revoked: new token, retry once

# --- Collections ------------------------------------------------------------
Collection = Literal["reservations", "guests", "rooms", "payments"]
COLLECTIONS: tuple[Collection, ...] = ("reservations", "guests", "rooms", "payments")
PARAM_UPDATED_SINCE = "updated_since"  # inclusive
PARAM_UPDATED_BEFORE = "updated_before"  # exclusive
PARAM_LIMIT = "limit"
PARAM_CURSOR = "cursor"
MIN_PAGE_LIMIT, MAX_PAGE_LIMIT, DEFAULT_PAGE_LIMIT = 1, 500, 100
# Records come in ascending (updated_at, id) order; the id field per collection:
RECORD_ID_FIELD: dict[Collection, str] = {
    "reservations": "reservation_id",
    "guests": "guest_id",
    "rooms": "room_id",
    "payments": "payment_id",
}

# --- Rate limiting ----------------------------------------------------------
RATE_LIMIT_PER_MINUTE = 100  # per client, per endpoint
HEADER_RATE_LIMIT = "X-RateLimit-Limit"
HEADER_RATE_REMAINING = "X-RateLimit-Remaining"
HEADER_RATE_RESET = "X-RateLimit-Reset"  # unix seconds when the window resets
HEADER_RETRY_AFTER = "Retry-After"

# --- Webhooks (TR-1, contract section 4) -----------------------------------
SUBSCRIBE_PATH = "/webhooks/subscribe"
UNSUBSCRIBE_PATH = "/webhooks/unsubscribe"
HEADER_SIGNATURE = "X-HostPMS-Signature"
HEADER_TIMESTAMP = "X-HostPMS-Timestamp"
SIGNATURE_TOLERANCE_SECONDS = 300
WEBHOOK_DELIVERY_TIMEOUT_SECONDS = 10
WEBHOOK_SECRET_PREFIX = "whsec_"
EVENT_COLLECTION: dict[str, Collection] = {
    "reservation.created": "reservations",
    "reservation.updated": "reservations",
    "reservation.cancelled": "reservations",
    "reservation.check_in": "reservations",
    "reservation.check_out": "reservations",
    "reservation.no_show": "reservations",
    "payment.received": "payments",
    "guest.created": "guests",
    "room.status_changed": "rooms",
}
WEBHOOK_EVENTS = tuple(EVENT_COLLECTION)


def events_of(collection: Collection) -> tuple[str, ...]:
    """The webhook events whose ``data`` is a record of ``collection``."""
    return tuple(event for event, of in EVENT_COLLECTION.items() if of == collection)


# --- Secrets Manager names (PRD TR-3) ---------------------------------------
OAUTH_SECRET_NAME = "hostpms/{property_id}/oauth-credentials"
WEBHOOK_SECRET_NAME = "hostpms/{property_id}/webhook-secret"


def collection_path(property_id: str, collection: Collection) -> str:
    return f"/properties/{property_id}/{collection}"


def webhook_delivery_path(property_id: str, event: str) -> str:
    """Appended to the subscriber's URL: ``{url}/{property_id}/{event}``."""
    return f"/{property_id}/{event}"


def property_country(property_id: str) -> str:
    """ISO country of a property: HostPMS ids start with it (``PT-LIS-001``)."""
    return property_id.split("-", 1)[0].upper()


def sign_webhook(secret: str, timestamp: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 over ``{timestamp}.{raw body}``, keyed by the whole secret."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, to the second unless the moment has microseconds."""
    moment = moment.astimezone(UTC)
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.strftime(pattern)


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- Models -----------------------------------------------------------------
# Envelopes are strict: a page that does not have this shape is malformed and is
# never landed. Records are lenient: values vary by country and over time, and a
# record that cannot become a booking is rejected downstream, with its reason,
# rather than failing the page it came in.


class TokenResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = DEFAULT_TOKEN_LIFETIME_SECONDS


class _Record(msgspec.Struct):
    """Any collection's record: only ``updated_at`` is required of all of them."""

    updated_at: str


class _Envelope(msgspec.Struct):
    data: msgspec.Raw  # the records' JSON array, kept as sent: landed without re-encoding
    next_cursor: str | None


@dataclass(frozen=True)
class PageContent:
    data: bytes  # the JSON array of records, byte for byte as HostPMS sent it
    updated_at: list[str]  # each record's, in page order
    next_cursor: str | None


def read_page(body: bytes) -> PageContent:
    """A page's envelope, checked: raises ``ValueError`` if ``body`` is not a page.

    Records are not decoded into objects (a million records would cost seconds of
    CPU): only their ``updated_at`` is read, the rest is kept as bytes.
    """
    try:
        envelope = msgspec.json.decode(body, type=_Envelope)
        records = msgspec.json.decode(envelope.data, type=list[_Record])
    except msgspec.DecodeError as error:  # ValidationError included
        raise ValueError(str(error)) from None
    return PageContent(
        bytes(envelope.data), [record.updated_at for record in records], envelope.next_cursor
    )


@cache
def _keyed_record(id_field: str) -> type[msgspec.Struct]:
    return msgspec.defstruct("KeyedRecord", [(id_field, str), ("updated_at", str)])


def record_keys(data: bytes, id_field: str) -> list[tuple[str, str]] | None:
    """Each record's (HostPMS id, ``updated_at``) in page order, the rest of it skipped
    undecoded; None if a record lacks either as text."""
    try:
        records = msgspec.json.decode(data, type=list[_keyed_record(id_field)])
    except msgspec.DecodeError:  # ValidationError included
        return None
    return [(getattr(record, id_field), record.updated_at) for record in records]


def newest_timestamp(stamps: list[str]) -> datetime | None:
    """The latest of ``updated_at`` values; raises ``ValueError`` for one that is not a timestamp.

    Stamps in the contract's own form (UTC, ``Z``, one length) sort as text, so only
    the first and last need parsing; any other form is parsed whole.
    """
    if not stamps:
        return None
    width = len(stamps[0])
    if all(len(stamp) == width and stamp.endswith("Z") for stamp in stamps):
        parse_timestamp(min(stamps))
        return parse_timestamp(max(stamps))
    return max(map(parse_timestamp, stamps))


class ReservationGuest(BaseModel):
    model_config = ConfigDict(extra="allow")
    guest_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    nif: str | None = None


class ReservationRoom(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str | None = None
    number: str | None = None
    floor: int | None = None


class ReservationDates(BaseModel):
    model_config = ConfigDict(extra="allow")
    check_in: str | None = None
    check_out: str | None = None
    created_at: str | None = None


class ReservationPricing(BaseModel):
    model_config = ConfigDict(extra="allow")
    total: Any = None  # a number when well-formed; anything else is rejected downstream
    currency: str | None = None
    rate_plan: str | None = None
    iva: Any = None
    taxa_turistica: Any = None  # Portugal
    tasa_turistica: Any = None  # Spain


class Reservation(BaseModel):
    model_config = ConfigDict(extra="allow")
    reservation_id: str | None = None
    property_id: str | None = None
    guest: ReservationGuest = Field(default_factory=ReservationGuest)
    room: ReservationRoom = Field(default_factory=ReservationRoom)
    dates: ReservationDates = Field(default_factory=ReservationDates)
    pricing: ReservationPricing = Field(default_factory=ReservationPricing)
    status: str | None = None
    channel: str | None = None
    payment_method: str | None = None
    special_requests: str | None = None
    updated_at: datetime


class Guest(BaseModel):
    model_config = ConfigDict(extra="allow")
    guest_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    nif: str | None = None
    document_type: str | None = None
    document_number: str | None = None
    date_of_birth: str | None = None
    language: str | None = None
    marketing_consent: bool | None = None
    updated_at: datetime


class Room(BaseModel):
    model_config = ConfigDict(extra="allow")
    room_id: str
    number: str | None = None
    type: str | None = None
    floor: int | None = None
    max_occupancy: int | None = None
    status: str | None = None
    updated_at: datetime


class Payment(BaseModel):
    model_config = ConfigDict(extra="allow")
    payment_id: str
    reservation_id: str | None = None
    amount: Any = None
    currency: str | None = None
    method: str | None = None
    status: str | None = None
    paid_at: str | None = None
    updated_at: datetime


class WebhookEvent(BaseModel):
    """The delivery body: ``data`` is the whole record of the event's collection."""

    model_config = ConfigDict(extra="allow")
    id: str
    type: str
    property_id: str
    created_at: datetime
    data: dict[str, Any]


class Subscription(BaseModel):
    subscription_id: str
    secret: str

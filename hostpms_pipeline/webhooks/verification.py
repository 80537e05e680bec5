"""Is a delivery authentic, fresh and well-formed? Each check raises a :class:`Refusal`.

Checks run cheapest and least trusting first: the path, the declared size, the
signature (before anything in the body is parsed), the timestamp's freshness,
then the body's shape. Refusal details name what is wrong, never a value from
the body (it may hold guest PII) and never a secret.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from hostpms_pipeline import property_ids as property_id_rule
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.webhooks.outcomes import Outcome, Refusal

MAX_BODY_BYTES = 1024 * 1024
# Unix seconds have 10 digits until 2286; Python's int() refuses strings over 4,300 digits.
MAX_TIMESTAMP_DIGITS = 20
# Nesting a body may have. orjson reads up to 1,024 levels but writes only 254, and the
# landed envelope adds 2 around ``data``: deeper events could be verified but never landed.
MAX_JSON_DEPTH = 128
# Path and body values end up in storage keys and secret names: plain identifiers only.
_EVENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_:-]{0,127}")


@dataclass(frozen=True)
class VerifiedEvent:
    """A delivery that passed every check; ``record`` is ``data`` exactly as parsed."""

    event: contract.WebhookEvent
    record: dict[str, Any]

    @property
    def collection(self) -> contract.Collection:
        return contract.EVENT_COLLECTION[self.event.type]


def check_path(property_id: str, event_type: str) -> None:
    if event_type not in contract.EVENT_COLLECTION:
        raise Refusal(Outcome.UNKNOWN_EVENT, "no such HostPMS webhook event")
    if not property_id_rule.is_valid(property_id):
        raise Refusal(Outcome.UNKNOWN_PROPERTY, "no such property")


def check_declared_length(content_length: str | None) -> None:
    """Refuse early on the header; :func:`read_body` still counts (a header can lie)."""
    if (
        content_length is not None
        and content_length.isdigit()
        and int(content_length) > MAX_BODY_BYTES
    ):
        raise Refusal(Outcome.PAYLOAD_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")


async def read_body(chunks: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, refused as soon as more than ``limit`` bytes have arrived."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise Refusal(Outcome.PAYLOAD_TOO_LARGE, f"body over {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def verify_signature(
    secrets: Sequence[str], timestamp: str | None, signature_header: str | None, body: bytes
) -> None:
    """One of the header's comma-separated signatures must match one of the secrets."""
    if not timestamp or not signature_header:
        raise Refusal(
            Outcome.MISSING_SIGNATURE,
            f"{contract.HEADER_SIGNATURE} and {contract.HEADER_TIMESTAMP} are required",
        )
    offered = [part.strip().encode() for part in signature_header.split(",") if part.strip()]
    expected = [contract.sign_webhook(secret, timestamp, body).encode() for secret in secrets]
    # Every pair is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(want, got) for want in expected for got in offered]
    if not any(matches):
        raise Refusal(Outcome.BAD_SIGNATURE, "no valid signature")


def check_timestamp(timestamp: str, now: float) -> None:
    """Signed unix seconds, at most the tolerance away from ``now``, in either direction."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > MAX_TIMESTAMP_DIGITS:
        raise Refusal(Outcome.INVALID_TIMESTAMP, f"{contract.HEADER_TIMESTAMP} is not unix seconds")
    if abs(now - int(timestamp)) > contract.SIGNATURE_TOLERANCE_SECONDS:
        raise Refusal(
            Outcome.STALE_TIMESTAMP,
            f"timestamp more than {contract.SIGNATURE_TOLERANCE_SECONDS} s from now",
        )


def nests_deeper_than(document: Any, limit: int) -> bool:
    """True if objects and arrays nest more than ``limit`` levels (iterative: no recursion)."""
    stack = [(document, 1)] if isinstance(document, dict | list) else []
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def parse_event(body: bytes, property_id: str, event_type: str) -> VerifiedEvent:
    """The contract's event, for this path's property and event type."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refusal(Outcome.MALFORMED_JSON, "body is not JSON") from None
    if nests_deeper_than(document, MAX_JSON_DEPTH):
        raise Refusal(Outcome.INVALID_EVENT, f"body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        event = contract.WebhookEvent.model_validate(document)
    except ValidationError as error:
        # Field locations only: pydantic's messages quote the input, which may be PII.
        fields = sorted({".".join(map(str, e["loc"])) or "body" for e in error.errors()})
        raise Refusal(
            Outcome.INVALID_EVENT, f"not a HostPMS event; check {', '.join(fields)}"
        ) from None
    if not _EVENT_ID.fullmatch(event.id):
        raise Refusal(Outcome.INVALID_EVENT, "id is not a HostPMS event id")
    if event.property_id != property_id or event.type != event_type:
        raise Refusal(Outcome.PATH_MISMATCH, "the path's property and event must equal the body's")
    return VerifiedEvent(event, document["data"])

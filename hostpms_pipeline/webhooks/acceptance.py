"""What happens to one delivery, free of any web framework (the ASGI app and Lambda share it).

Order: the property's secrets → signature → timestamp → body → claim the event id →
land the event → mark it landed → announce it on EventBridge (when configured, best
effort) → answer. Nothing is landed before every check has passed, and no 2xx is
answered before the event is durably in the raw store.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from botocore.exceptions import BotoCoreError, ClientError

from hostpms_pipeline.entities import BY_COLLECTION
from hostpms_pipeline.gdpr.redaction import LandingGuard
from hostpms_pipeline.hostpms.credentials import MissingSecret
from hostpms_pipeline.lake.storage import ObjectStore, StorageError
from hostpms_pipeline.webhooks import verification
from hostpms_pipeline.webhooks.events import EventPublisher, open_event_publisher
from hostpms_pipeline.webhooks.idempotency import (
    Claim,
    ClaimState,
    EventRef,
    IdempotencyError,
    IdempotencyStore,
)
from hostpms_pipeline.webhooks.landing import land_event
from hostpms_pipeline.webhooks.outcomes import Outcome, Refusal
from hostpms_pipeline.webhooks.verification import VerifiedEvent

log = logging.getLogger(__name__)

# The property's valid secrets; raises MissingSecret for a property it does not know.
SecretLookup = Callable[[str], Sequence[str]]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Delivery:
    property_id: str  # from the path, already checked by verification.check_path
    event_type: str
    timestamp: str | None
    signature: str | None
    body: bytes


@dataclass(frozen=True)
class Acceptance:
    outcome: Outcome  # ACCEPTED or DUPLICATE
    event_id: str
    location: str | None = None  # where this delivery landed the event (None for a duplicate)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebhookAcceptor:
    secrets: SecretLookup
    store: ObjectStore
    idempotency: IdempotencyStore
    clock: Clock = field(default=_utc_now)
    # EventBridge when HOSTPMS_EVENT_BUS is set; None sends nothing.
    events: EventPublisher | None = field(default_factory=open_event_publisher)
    # Redacts erased persons before the event lands (GDPR suppression list); ``build_app`` sets it.
    landing_guard: LandingGuard | None = None

    def accept(self, delivery: Delivery) -> Acceptance:
        """Land a verified event once; raises :class:`Refusal` for anything else."""
        verification.verify_signature(
            self._secrets_of(delivery.property_id),
            delivery.timestamp,
            delivery.signature,
            delivery.body,
        )
        now = self.clock()
        verification.check_timestamp(delivery.timestamp or "", now.timestamp())
        verified = verification.parse_event(
            delivery.body, delivery.property_id, delivery.event_type
        )
        return self._land_once(verified, now)

    def _secrets_of(self, property_id: str) -> Sequence[str]:
        try:
            secrets = self.secrets(property_id)
        except MissingSecret:
            secrets = []
        except (ClientError, BotoCoreError) as error:
            log.warning("webhook secrets unavailable: %s", type(error).__name__)
            raise Refusal(
                Outcome.SECRETS_UNAVAILABLE, "cannot read the property's secret"
            ) from None
        if not secrets:
            raise Refusal(Outcome.UNKNOWN_PROPERTY, "no such property")
        return secrets

    def _land_once(self, verified: VerifiedEvent, now: datetime) -> Acceptance:
        event = verified.event
        claim = self._claim(EventRef(event.property_id, event.id, event.type), now)
        if claim.state is ClaimState.DUPLICATE:
            return Acceptance(Outcome.DUPLICATE, event.id)
        try:
            location = self._land(verified, now)
        except StorageError as error:
            log.warning("webhook event %s not landed: %s", event.id, error)
            self._release(claim)
            raise Refusal(
                Outcome.STORAGE_UNAVAILABLE, "raw store unavailable", event_id=event.id
            ) from None
        except BaseException:
            # Whatever failed after the claim, the claim must not stay held: a retry
            # would get 409 until the lease ends (a poison message for 24 hours).
            self._release(claim)
            raise
        self._mark(claim, location, now)
        if self.events is not None:
            self.events.announce(verified, location, now)  # best effort, never raises
        return Acceptance(Outcome.ACCEPTED, event.id, location)

    def _land(self, verified: VerifiedEvent, now: datetime) -> str:
        if self.landing_guard is None:
            return land_event(self.store, verified, now)
        with self.landing_guard.landing() as landing:
            spec = BY_COLLECTION[verified.collection]
            records = landing.redact(spec, [verified.record], verified.event.property_id)
            if records != [verified.record]:
                verified = dataclasses.replace(verified, record=records[0] if records else None)
            return land_event(self.store, verified, now)

    def _claim(self, event: EventRef, now: datetime) -> Claim:
        try:
            claim = self.idempotency.claim(event, now)
        except IdempotencyError as error:
            log.warning("webhook event %s not claimed: %s", event.event_id, error)
            raise Refusal(
                Outcome.IDEMPOTENCY_UNAVAILABLE,
                "idempotency store unavailable",
                event_id=event.event_id,
            ) from None
        if claim.state is ClaimState.IN_FLIGHT:
            raise Refusal(
                Outcome.IN_FLIGHT, "this event is being received right now", event_id=event.event_id
            )
        return claim

    def _release(self, claim: Claim) -> None:
        """Best effort: if this fails too, the claim's lease runs out and a retry takes it over."""
        try:
            self.idempotency.release(claim)
        except IdempotencyError as error:
            log.warning("webhook event %s claim not released: %s", claim.event.event_id, error)

    def _mark(self, claim: Claim, location: str, now: datetime) -> None:
        """Best effort: the event is landed, so the answer is 2xx whatever happens here.

        Unmarked, the claim's lease runs out and a later redelivery lands a second
        copy, which dedup absorbs.
        """
        try:
            self.idempotency.mark_landed(claim, location, now)
        except IdempotencyError as error:
            log.warning("webhook event %s landed but not marked: %s", claim.event.event_id, error)

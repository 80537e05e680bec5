"""Webhook subscriptions and at-least-once delivery.

Events arise when the simulator clock passes a record version's ``updated_at``
(or on demand). A background task POSTs each to ``{url}/{property_id}/{event}``,
signed with the subscription's secret, and retries any non-2xx answer, error or
answer slower than the delivery timeout, with exponential backoff, until the
event is older than the configured maximum age. The timestamp header is real
(wall-clock) time, not simulator time: receivers check it against their clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import datetime

import httpx
import orjson

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.simulator.clock import SimulatorClock
from hostpms_pipeline.simulator.config import WebhookConfig
from hostpms_pipeline.simulator.data import Version
from hostpms_pipeline.simulator.store import Dataset

log = logging.getLogger(__name__)
ATTEMPT_LOG_SIZE = 10_000


class UnknownEvent(ValueError):
    pass


@dataclass
class WebhookSubscription:
    subscription_id: str
    property_id: str
    url: str
    events: frozenset[str]
    secret: str = field(repr=False)
    watched_until: datetime  # simulator time up to which changes became events


@dataclass
class Delivery:
    subscription: WebhookSubscription
    event_id: str
    event_type: str
    body: bytes
    arose_at: float  # monotonic
    due_at: float  # monotonic
    attempts: int = 0

    @property
    def url(self) -> str:
        return self.subscription.url.rstrip("/") + contract.webhook_delivery_path(
            self.subscription.property_id, self.event_type
        )


@dataclass(frozen=True)
class DeliveryAttempt:
    event_id: str
    event_type: str
    subscription_id: str
    attempt: int
    status: int | None  # None: no answer (timeout, refused connection...)
    outcome: str  # delivered / retry / gave_up


class WebhookDispatcher:
    def __init__(self, config: WebhookConfig, dataset: Dataset, clock: SimulatorClock, seed: int):
        self.config = config
        self._dataset = dataset
        self._clock = clock
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._collecting = threading.Lock()  # one collector at a time: no event raised twice
        self._subscriptions: dict[str, WebhookSubscription] = {}
        self._queue: list[Delivery] = []
        self._busy: set[str] = set()  # subscriptions with a batch in flight: keeps their order
        self.attempts: deque[DeliveryAttempt] = deque(maxlen=ATTEMPT_LOG_SIZE)

    # --- subscriptions -----------------------------------------------------
    def subscribe(self, property_id: str, url: str, events: list[str]) -> WebhookSubscription:
        unknown = set(events) - set(contract.WEBHOOK_EVENTS)
        if unknown or not events:
            raise UnknownEvent(f"unknown webhook events: {sorted(unknown)}")
        subscription = WebhookSubscription(
            subscription_id=f"sub_{secrets.token_hex(8)}",
            property_id=property_id,
            url=url,
            events=frozenset(events),
            secret=contract.WEBHOOK_SECRET_PREFIX + secrets.token_urlsafe(24),
            watched_until=self._clock.now(),
        )
        with self._lock:
            self._subscriptions[subscription.subscription_id] = subscription
        return subscription

    def unsubscribe(self, subscription_id: str) -> bool:
        with self._lock:
            removed = self._subscriptions.pop(subscription_id, None)
            self._queue = [d for d in self._queue if d.subscription is not removed]
        return removed is not None

    def subscriptions(self) -> list[dict[str, object]]:
        with self._lock:
            return [
                {
                    "subscription_id": s.subscription_id,
                    "property_id": s.property_id,
                    "url": s.url,
                    "events": sorted(s.events),
                }
                for s in self._subscriptions.values()
            ]

    # --- events --------------------------------------------------------------
    def emit(self, property_id: str, event_type: str, record_id: str | None = None) -> str:
        """Raise an event now for a record's current state (the latest record if no id)."""
        collection = contract.EVENT_COLLECTION.get(event_type)
        if collection is None:
            raise UnknownEvent(f"unknown webhook event: {event_type}")
        now = self._clock.now()
        with self._dataset.lock:
            timeline = self._dataset.timeline(property_id, collection)
            key = record_id or timeline.latest_keys(now)[-1]
            version = timeline.current(key, now)
        if version is None:
            raise KeyError(f"no {collection} record {key!r} visible now")
        event_id = f"evt_{secrets.token_hex(8)}"
        self._enqueue_for_property(property_id, event_id, event_type, version, now)
        return event_id

    def collect_changes(self) -> int:
        """Turn the record versions the clock has passed into events; returns how many."""
        with self._collecting:
            now = self._clock.now()
            with self._lock:
                subscriptions = list(self._subscriptions.values())
            raised = 0
            for subscription in subscriptions:
                since, subscription.watched_until = subscription.watched_until, now
                for _, version in self._dataset.changes_between(
                    subscription.property_id, since, now
                ):
                    if version.event in subscription.events:
                        self._enqueue(
                            subscription,
                            _event_id(subscription.property_id, version),
                            version.event,
                            version,
                            now,
                        )
                        raised += 1
            return raised

    def _enqueue_for_property(
        self, property_id: str, event_id: str, event_type: str, version: Version, now: datetime
    ) -> None:
        with self._lock:
            targets = [
                s
                for s in self._subscriptions.values()
                if s.property_id == property_id and event_type in s.events
            ]
        for subscription in targets:
            self._enqueue(subscription, event_id, event_type, version, now)

    def _enqueue(
        self,
        subscription: WebhookSubscription,
        event_id: str,
        event_type: str,
        version: Version,
        now: datetime,
    ) -> None:
        body = orjson.dumps(
            {
                "id": event_id,
                "type": event_type,
                "property_id": subscription.property_id,
                "created_at": contract.format_timestamp(now),
                "data": version.record,
            }
        )
        copies = 2 if self._rng.random() < self.config.duplicate_rate else 1
        arose_at = time.monotonic()
        with self._lock:
            for _ in range(copies):
                delay = self._rng.uniform(0, self.config.shuffle_window_seconds)
                self._queue.append(
                    Delivery(subscription, event_id, event_type, body, arose_at, arose_at + delay)
                )

    # --- delivery ------------------------------------------------------------
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    async def run(self) -> None:
        """Forever: collect new events, start sending the due ones; cancelled on shutdown."""
        in_flight: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=self.config.delivery_timeout_seconds) as http:
            try:
                while True:
                    self.collect_changes()
                    for batch in self._take_due():
                        task = asyncio.create_task(self._send_in_order(http, batch))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    await asyncio.sleep(self.config.poll_interval_seconds)
            finally:
                for task in in_flight:
                    task.cancel()

    def _take_due(self) -> list[list[Delivery]]:
        """Due deliveries of idle subscriptions, one batch per subscription, in due order."""
        now = time.monotonic()
        batches: dict[str, list[Delivery]] = {}
        with self._lock:
            waiting = []
            for delivery in sorted(self._queue, key=lambda d: d.due_at):
                subscription_id = delivery.subscription.subscription_id
                if delivery.due_at <= now and subscription_id not in self._busy:
                    batches.setdefault(subscription_id, []).append(delivery)
                else:
                    waiting.append(delivery)
            self._queue = waiting
            self._busy.update(batches)
        return list(batches.values())

    async def _send_in_order(self, http: httpx.AsyncClient, batch: list[Delivery]) -> None:
        try:
            for delivery in batch:
                await self._attempt(http, delivery)
        finally:
            with self._lock:
                self._busy.discard(batch[0].subscription.subscription_id)

    async def _attempt(self, http: httpx.AsyncClient, delivery: Delivery) -> None:
        delivery.attempts += 1
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            contract.HEADER_TIMESTAMP: timestamp,
            contract.HEADER_SIGNATURE: contract.sign_webhook(
                delivery.subscription.secret, timestamp, delivery.body
            ),
        }
        try:
            response = await http.post(delivery.url, content=delivery.body, headers=headers)
            status: int | None = response.status_code
        except httpx.HTTPError as error:
            log.info(
                "webhook %s to subscription %s: %s",
                delivery.event_id,
                delivery.subscription.subscription_id,
                type(error).__name__,
            )
            status = None
        if status is not None and 200 <= status < 300:
            self._log(delivery, status, "delivered")
            return
        self._retry_later(delivery, status)

    def _retry_later(self, delivery: Delivery, status: int | None) -> None:
        now = time.monotonic()
        backoff = min(
            self.config.retry_max_seconds,
            self.config.retry_initial_seconds * 2 ** (delivery.attempts - 1),
        )
        if now + backoff - delivery.arose_at > self.config.max_age_seconds:
            self._log(delivery, status, "gave_up")
            return
        self._log(delivery, status, "retry")
        delivery.due_at = now + backoff
        with self._lock:
            if delivery.subscription.subscription_id in self._subscriptions:
                self._queue.append(delivery)

    def _log(self, delivery: Delivery, status: int | None, outcome: str) -> None:
        self.attempts.append(
            DeliveryAttempt(
                delivery.event_id,
                delivery.event_type,
                delivery.subscription.subscription_id,
                delivery.attempts,
                status,
                outcome,
            )
        )

    def attempt_log(self) -> list[dict[str, object]]:
        return [asdict(attempt) for attempt in list(self.attempts)]


def _event_id(property_id: str, version: Version) -> str:
    """The same change always gets the same id, so receivers can deduplicate redeliveries."""
    seed = f"{property_id}|{version.key}|{version.updated_at.isoformat()}|{version.event}"
    return "evt_" + hashlib.sha256(seed.encode()).hexdigest()[:16]

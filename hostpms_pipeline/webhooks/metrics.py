"""Prometheus metrics of the receiver, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from hostpms_pipeline.webhooks.outcomes import Outcome

# The sender gives up after 10 s: buckets up to there.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ReceiverMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "hostpms_webhook_requests",
            "Webhook deliveries received, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hostpms_webhook_request_duration_seconds",
            "Time from request to answer, by outcome",
            ["outcome"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Every series exists from the start, at zero: alerts can rate() them. The
        # children are kept, so a request skips the label lookup (and its lock).
        self._series = {
            outcome: (
                self.requests.labels(outcome=outcome.value),
                self.latency.labels(outcome=outcome.value),
            )
            for outcome in Outcome
        }

    def observe(self, outcome: Outcome, seconds: float) -> None:
        requests, latency = self._series[outcome]
        requests.inc()
        latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)

"""``HostPMSSimulator``: the simulated HostPMS, its state and its control methods."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline.simulator.clock import SimulatorClock
from hostpms_pipeline.simulator.config import SimulatorConfig
from hostpms_pipeline.simulator.data import generate_property
from hostpms_pipeline.simulator.faults import Faults
from hostpms_pipeline.simulator.ratelimit import RateLimiter
from hostpms_pipeline.simulator.store import Dataset, PageRequest, ServedPage
from hostpms_pipeline.simulator.tokens import TokenStore
from hostpms_pipeline.simulator.webhooks import WebhookDispatcher


class HostPMSSimulator:
    def __init__(self, config: SimulatorConfig | None = None):
        self.config = config or SimulatorConfig.from_settings(get_settings())
        self.anchor = self.config.resolved_anchor()
        self.clock = (
            SimulatorClock.starting_at(self.config.clock_start, self.config.clock_speed)
            if self.config.clock_start
            else SimulatorClock(speed=self.config.clock_speed)
        )
        self.dataset = Dataset(
            {pid: generate_property(self.config, pid) for pid in self.config.property_ids}
        )
        self.tokens = TokenStore(self.config.clients, self.config.token_lifetime_seconds)
        self.rate_limiter = RateLimiter(self.config.rate_limit, self.config.rate_window_seconds)
        self.faults = Faults()
        # Collection requests per property, admitted or not: what a client asked of whom.
        self.property_requests: Counter[str] = Counter()
        self.webhooks = WebhookDispatcher(
            self.config.webhooks, self.dataset, self.clock, self.config.seed
        )

    # --- control -------------------------------------------------------------
    def revoke_tokens(self) -> int:
        return self.tokens.revoke_all()

    def advance_clock(self, seconds: float) -> datetime:
        return self.clock.advance(seconds)

    def emit_event(self, property_id: str, event_type: str, record_id: str | None = None) -> str:
        return self.webhooks.emit(property_id, event_type, record_id)

    def page(
        self, property_id: str, collection: contract.Collection, request: PageRequest
    ) -> ServedPage:
        """A page as the API would serve it now (no auth, limits or faults)."""
        return self.dataset.page(property_id, collection, request, self.clock.now())

    def change_records(
        self, property_id: str, collection: contract.Collection, record_ids: list[str]
    ) -> int:
        """Give these records a new version at now, so they move to the end of the order."""
        return self.dataset.touch(property_id, collection, record_ids, self.clock.now())

    def state(self) -> dict[str, Any]:
        return {
            "now": contract.format_timestamp(self.clock.now()),
            "anchor": contract.format_timestamp(self.anchor),
            "property_ids": list(self.config.property_ids),
            "rate_limit": {
                "limit": self.config.rate_limit,
                "window_seconds": self.config.rate_window_seconds,
            },
            "request_counts": self.rate_limiter.request_counts(),
            "property_requests": dict(self.property_requests),
            "tokens_issued": self.tokens.issued,
            "faults_pending": self.faults.pending(),
            "subscriptions": self.webhooks.subscriptions(),
            "webhook_queue": self.webhooks.pending(),
            "webhook_attempts": self.webhooks.attempt_log(),
        }

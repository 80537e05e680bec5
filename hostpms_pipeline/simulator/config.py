"""Everything a simulator run can be told: data, OAuth, rate limit, clock, webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from types import MappingProxyType
from typing import Any

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.settings import (
    DEFAULT_PROPERTY_IDS,
    SIMULATOR_CLIENT_ID,
    SIMULATOR_CLIENT_SECRET,
    Settings,
)

COUNTRIES = ("PT", "ES")  # the countries whose values the simulator speaks


def today_at_midnight_utc() -> datetime:
    """The default data anchor: stable for every process started the same UTC day."""
    return datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)


@dataclass(frozen=True)
class WebhookConfig:
    delivery_timeout_seconds: float = contract.WEBHOOK_DELIVERY_TIMEOUT_SECONDS
    retry_initial_seconds: float = 5.0  # doubles after each failed attempt
    retry_max_seconds: float = 3600.0
    max_age_seconds: float = 24 * 3600  # give up on an event this long after it arose
    duplicate_rate: float = 0.0  # fraction of events delivered twice
    shuffle_window_seconds: float = (
        0.0  # >0: each event waits a random 0..window, so order shuffles
    )
    poll_interval_seconds: float = 0.1


@dataclass(frozen=True)
class SimulatorConfig:
    property_ids: tuple[str, ...] = DEFAULT_PROPERTY_IDS
    clients: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({SIMULATOR_CLIENT_ID: SIMULATOR_CLIENT_SECRET})
    )
    reservations_per_property: int = 200
    seed: int = 7
    anchor: datetime | None = None  # None: today at 00:00 UTC
    history_days: int = 730  # check-ins from this long before the anchor...
    future_days: int = 120  # ...to this long after it
    anomaly_rate: float = 0.0  # fraction of reservations made malformed or odd
    token_lifetime_seconds: float = contract.DEFAULT_TOKEN_LIFETIME_SECONDS
    rate_limit: int = contract.RATE_LIMIT_PER_MINUTE
    rate_window_seconds: float = 60.0
    clock_start: datetime | None = None  # None: the simulator's time starts at real time
    clock_speed: float = 1.0  # 0 freezes the clock (tests move it with advance())
    webhooks: WebhookConfig = field(default_factory=WebhookConfig)

    def __post_init__(self) -> None:
        unsupported = [
            p for p in self.property_ids if contract.property_country(p) not in COUNTRIES
        ]
        if unsupported:
            raise ValueError(
                f"the simulator knows Portuguese and Spanish properties only: {unsupported}"
            )
        if not 0.0 <= self.anomaly_rate <= 1.0:
            raise ValueError("anomaly_rate is a fraction, 0..1")

    def resolved_anchor(self) -> datetime:
        return (self.anchor or today_at_midnight_utc()).astimezone(UTC)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> SimulatorConfig:
        """Property ids, size and seed from ``HOSTPMS_*`` settings; anything else as given."""
        defaults: dict[str, Any] = {
            "property_ids": tuple(settings.simulator_property_ids),
            "reservations_per_property": settings.simulator_reservations_per_property,
            "seed": settings.simulator_seed,
            "anomaly_rate": settings.simulator_anomaly_rate,
        }
        return cls(**(defaults | overrides))

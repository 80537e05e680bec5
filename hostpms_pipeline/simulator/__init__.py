"""A HostPMS v3 stand-in: the whole API contract over real HTTP, with seeded data,
a controllable clock, rate limits, webhooks and fault injection (docs/simulator.md)."""

from hostpms_pipeline.simulator.clock import SimulatorClock
from hostpms_pipeline.simulator.config import SimulatorConfig, WebhookConfig
from hostpms_pipeline.simulator.server import RunningSimulator, run_in_background, serve
from hostpms_pipeline.simulator.service import HostPMSSimulator

__all__ = [
    "HostPMSSimulator",
    "RunningSimulator",
    "SimulatorClock",
    "SimulatorConfig",
    "WebhookConfig",
    "run_in_background",
    "serve",
]

"""The simulator every part of one process shares when no HostPMS URL is configured."""

from __future__ import annotations

import threading
from contextlib import ExitStack

from hostpms_pipeline.settings import Settings

_lock = threading.Lock()
_running: dict[str, object] = {}


def base_url(settings: Settings) -> str:
    """The embedded simulator's URL, started in a daemon thread on first use."""
    with _lock:
        if "running" not in _running:
            from hostpms_pipeline.simulator.config import SimulatorConfig
            from hostpms_pipeline.simulator.server import run_in_background
            from hostpms_pipeline.simulator.service import HostPMSSimulator

            simulator = HostPMSSimulator(SimulatorConfig.from_settings(settings))
            stack = ExitStack()
            _running["running"] = stack.enter_context(run_in_background(simulator))
            _running["stack"] = stack
        return _running["running"].base_url  # type: ignore[attr-defined]

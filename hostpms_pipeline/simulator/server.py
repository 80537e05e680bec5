"""Running the simulator: in a background thread (tests, embedded) or blocking (CLI)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from hostpms_pipeline.simulator.app import API_PREFIX, build_app
from hostpms_pipeline.simulator.config import SimulatorConfig
from hostpms_pipeline.simulator.service import HostPMSSimulator

STARTUP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class RunningSimulator:
    simulator: HostPMSSimulator
    host: str
    port: int

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client calls ``base``: ``http://127.0.0.1:PORT/v3``."""
        return self.root_url + API_PREFIX

    @property
    def admin_url(self) -> str:
        return self.root_url + "/_simulator"


@contextmanager
def serve_app_in_background(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> Iterator[int]:
    """Serve any ASGI app with uvicorn from a daemon thread; yields the bound port."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hostpms-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"could not serve on {host}:{port}")
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_SECONDS)


@contextmanager
def run_in_background(
    simulator: HostPMSSimulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSimulator]:
    """Serve the simulator from a daemon thread; port 0 picks a free port."""
    simulator = simulator or HostPMSSimulator()
    with serve_app_in_background(build_app(simulator), host, port) as bound_port:
        yield RunningSimulator(simulator, host, bound_port)


def serve(config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 8400) -> None:
    """Serve until interrupted (the ``hostpms simulator`` command)."""
    simulator = HostPMSSimulator(config)
    uvicorn.run(build_app(simulator), host=host, port=port, log_level="info", lifespan="on")

"""What both webhook benchmarks share: signed HostPMS events, a throwaway embedded
PostgreSQL and ``hostpms serve-webhooks`` run as a subprocess on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from hostpms_pipeline.hostpms import contract

HOST = "127.0.0.1"
SECRET = "whsec_benchmark-secret"
PROPERTY_IDS = ("PT-LIS-001", "PT-POR-002", "ES-MAD-001")
HOSTPMS = str(Path(sys.executable).parent / "hostpms")
STARTUP_TIMEOUT_SECONDS = 60


def reservation(reservation_id: str, property_id: str, updated_at: str) -> dict[str, Any]:
    """A HostPMS reservation as the contract delivers it (Portuguese/Spanish values)."""
    return {
        "reservation_id": reservation_id,
        "property_id": property_id,
        "guest": {
            "guest_id": f"GST-{reservation_id}",
            "name": "Benchmark Guest",
            "email": "guest@example.pt",
            "phone": "+351900000000",
            "country": "PT",
            "nif": "999999990",
        },
        "room": {"type": "duplo", "number": "204", "floor": 2},
        "dates": {"check_in": "2026-12-10", "check_out": "2026-12-15", "created_at": updated_at},
        "pricing": {
            "total": 450.0,
            "currency": "EUR",
            "rate_plan": "flexivel",
            "iva": 103.5,
            "taxa_turistica": 20.0,
        },
        "status": "confirmada",
        "channel": "booking.com",
        "payment_method": "cartao",
        "updated_at": updated_at,
    }


def reservation_event(event_id: str, reservation_id: str, property_id: str, at: datetime) -> bytes:
    stamp = contract.format_timestamp(at)
    return orjson.dumps(
        {
            "id": event_id,
            "type": "reservation.updated",
            "property_id": property_id,
            "created_at": stamp,
            "data": reservation(reservation_id, property_id, stamp),
        }
    )


def webhook_path(property_id: str, event_type: str = "reservation.updated") -> str:
    return f"/webhooks/hostpms/{property_id}/{event_type}"


def signed_headers(body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(timestamp if timestamp is not None else int(time.time()))
    return {
        "Content-Type": "application/json",
        contract.HEADER_TIMESTAMP: stamp,
        contract.HEADER_SIGNATURE: contract.sign_webhook(SECRET, stamp, body),
    }


def utc_now() -> datetime:
    return datetime.now(UTC)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def receiver_environment(folder: Path, database_url: str) -> dict[str, str]:
    """Everything the receiver (and the Dagster processes) need, pointed at ``folder``."""
    return {
        **os.environ,
        "HOSTPMS_HOME": str(folder / "home"),
        "HOSTPMS_DATABASE_URL": database_url,
        "HOSTPMS_RAW_URL": str(folder / "raw"),
        "HOSTPMS_PROCESSED_URL": str(folder / "processed"),
        "HOSTPMS_WEBHOOK_SECRET": SECRET,
        "HOSTPMS_PROPERTY_IDS": ",".join(PROPERTY_IDS),
    }


@contextmanager
def running_receiver(environment: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """``hostpms serve-webhooks`` on a free loopback port; yields its base URL."""
    port = free_port()
    command = [HOSTPMS, "serve-webhooks", "--host", HOST, "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=dict(environment), stdout=log, stderr=log)
        base_url = f"http://{HOST}:{port}"
        try:
            _wait_until_healthy(base_url, process)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_until_healthy(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the receiver exited with {process.returncode}; see its log")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the receiver did not answer /health within {STARTUP_TIMEOUT_SECONDS} s")

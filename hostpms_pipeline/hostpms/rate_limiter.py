"""Client-side pacing under HostPMS's rate limit, shared by every process through PostgreSQL.

HostPMS allows 100 requests per minute per client and endpoint (collection). Several
processes may poll with the same client at once (Dagster runs of several properties,
a backfill), so a process-local budget is not enough. The schedule lives in
``rate_limit_slots``: one row per (client_id, endpoint) holding the earliest moment
the next request may go. Claiming a slot is one atomic upsert that moves that
moment on by ``window / limit`` (plus a safety margin); the caller then sleeps until
its slot. Requests from all processes together are evenly spaced, never a window's
budget in one burst. Every moment comes from PostgreSQL's clock, so the hosts'
clocks need not agree.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import psycopg

from hostpms_pipeline.hostpms import contract

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]

# Requests leave a little later than their slot (the sleep overshoots, the request
# takes time to reach HostPMS); spacing them this much wider keeps a late request
# from landing in the next window on top of that window's full share.
DEFAULT_SAFETY_MARGIN = 0.02


class RequestLimiter(Protocol):
    """What ``HostPMSClient`` asks before every request to a rate-limited endpoint."""

    def acquire(self, client_id: str, endpoint: str) -> None:
        """Block until this client may send one more request to ``endpoint``."""


@dataclass(frozen=True)
class RateLimit:
    requests: int = contract.RATE_LIMIT_PER_MINUTE
    window_seconds: float = 60.0
    safety_margin: float = DEFAULT_SAFETY_MARGIN

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window_seconds <= 0 or self.safety_margin < 0:
            raise ValueError(
                "a rate limit needs requests >= 1, a positive window and a margin >= 0"
            )

    @property
    def spacing_seconds(self) -> float:
        """Time between two consecutive requests of one (client, endpoint)."""
        return self.window_seconds / self.requests * (1 + self.safety_margin)


@dataclass(frozen=True)
class Slot:
    at: datetime  # when the request may be sent (PostgreSQL's clock)
    wait_seconds: float  # how long from the claim until then


_CLAIM_SQL = """
INSERT INTO rate_limit_slots AS s (client_id, endpoint, next_allowed_at)
VALUES (%(client_id)s, %(endpoint)s, clock_timestamp() + %(spacing)s * interval '1 second')
ON CONFLICT (client_id, endpoint) DO UPDATE SET
    next_allowed_at = greatest(s.next_allowed_at, clock_timestamp()) + %(spacing)s * interval '1 second'
RETURNING
    next_allowed_at - %(spacing)s * interval '1 second',
    extract(epoch FROM next_allowed_at - %(spacing)s * interval '1 second' - clock_timestamp())
"""


class PostgresRateLimiter:
    """The shared schedule; every process that uses the same database paces together."""

    def __init__(
        self,
        connect: Connect,
        limit: RateLimit = RateLimit(),
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._connect = connect
        self.limit = limit
        self._sleep = sleep

    def claim(self, client_id: str, endpoint: str) -> Slot:
        """Take the next free slot of (client, endpoint) without waiting for it."""
        params = {
            "client_id": client_id,
            "endpoint": endpoint,
            "spacing": self.limit.spacing_seconds,
        }
        with self._connect() as conn, conn.transaction():
            row = conn.execute(_CLAIM_SQL, params).fetchone()
        assert row is not None
        slot_at, wait = row
        return Slot(at=slot_at, wait_seconds=max(0.0, float(wait)))

    def acquire(self, client_id: str, endpoint: str) -> None:
        slot = self.claim(client_id, endpoint)
        if slot.wait_seconds > 0:
            self._sleep(slot.wait_seconds)


class InProcessRateLimiter:
    """The same even spacing for one process (no PostgreSQL): scripts and tools."""

    def __init__(
        self, limit: RateLimit = RateLimit(), *, sleep: Callable[[float], None] = time.sleep
    ):
        self.limit = limit
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_allowed: dict[tuple[str, str], float] = {}

    def acquire(self, client_id: str, endpoint: str) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(self._next_allowed.get((client_id, endpoint), now), now)
            self._next_allowed[(client_id, endpoint)] = slot + self.limit.spacing_seconds
        if slot > now:
            self._sleep(slot - now)

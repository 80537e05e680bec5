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

# When requests may follow each other faster than this (the limit is off, in effect),
# slots are claimed this many seconds' worth at a time: one round trip to PostgreSQL
# per block instead of per request.
BLOCK_SECONDS = 0.2
MAX_BLOCK = 64

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
VALUES (%(client_id)s, %(endpoint)s, clock_timestamp() + %(span)s * interval '1 second')
ON CONFLICT (client_id, endpoint) DO UPDATE SET
    next_allowed_at = greatest(s.next_allowed_at, clock_timestamp()) + %(span)s * interval '1 second'
RETURNING
    next_allowed_at - %(span)s * interval '1 second',
    extract(epoch FROM next_allowed_at - %(span)s * interval '1 second' - clock_timestamp())
"""


class PostgresRateLimiter:
    """The shared schedule; every process that uses the same database paces together.

    A claim is one autocommitted upsert on a connection kept open, committed without
    waiting for the WAL flush: a claim lost in a crash only leaves a gap in the schedule.
    """

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
        self._local = threading.local()  # per thread: its connection and its block of slots
        self._lock = threading.Lock()
        self._connections: list[AbstractContextManager[psycopg.Connection]] = []
        spacing = limit.spacing_seconds
        self._block = max(1, min(MAX_BLOCK, int(BLOCK_SECONDS / spacing)))

    def claim(self, client_id: str, endpoint: str, count: int = 1) -> Slot:
        """Take the next ``count`` free slots of (client, endpoint) without waiting; the first's."""
        params = {
            "client_id": client_id,
            "endpoint": endpoint,
            "span": self.limit.spacing_seconds * count,
        }
        row = self._connection().execute(_CLAIM_SQL, params).fetchone()
        assert row is not None
        slot_at, wait = row
        return Slot(at=slot_at, wait_seconds=max(0.0, float(wait)))

    def acquire(self, client_id: str, endpoint: str) -> None:
        blocks: dict[tuple[str, str], list[float]] = self._local.__dict__.setdefault("blocks", {})
        block = blocks.get((client_id, endpoint))
        if not block:
            slot = self.claim(client_id, endpoint, self._block)
            start = time.monotonic() + slot.wait_seconds
            spacing = self.limit.spacing_seconds
            block = blocks[(client_id, endpoint)] = [
                start + spacing * index for index in reversed(range(self._block))
            ]
        wait = block.pop() - time.monotonic()
        if wait > 0:
            self._sleep(wait)

    def _connection(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            opened = self._connect()
            conn = opened.__enter__()
            conn.autocommit = True
            conn.execute("SET synchronous_commit = off")
            self._local.conn = conn
            with self._lock:
                self._connections.append(opened)
        return conn

    def close(self) -> None:
        """Close the connections the limiter opened (one per thread that claimed)."""
        with self._lock:
            opened, self._connections = self._connections, []
        for connection in opened:
            connection.__exit__(None, None, None)


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

"""Fixed-window rate limit per (client, endpoint), with counts kept for inspection."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from hostpms_pipeline.hostpms import contract


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # unix seconds when the window resets
    retry_after: int  # seconds until then, rounded up

    def headers(self) -> dict[str, str]:
        return {
            contract.HEADER_RATE_LIMIT: str(self.limit),
            contract.HEADER_RATE_REMAINING: str(self.remaining),
            contract.HEADER_RATE_RESET: str(self.reset_at),
        }


class RateLimiter:
    """``limit`` requests per ``window_seconds`` of real time, per (client, endpoint).

    Windows are aligned to multiples of the window length (a minute starts at :00),
    so a client that waits for ``X-RateLimit-Reset`` gets a fresh budget. Refused
    requests do not use the budget.
    """

    def __init__(self, limit: int, window_seconds: float, *, wall: Callable[[], float] = time.time):
        self.limit = limit
        self.window = window_seconds
        self._wall = wall
        self._lock = threading.Lock()
        self._used: Counter[tuple[str, str, float]] = Counter()
        self.served_per_minute: Counter[tuple[str, str, int]] = Counter()
        self.refused_per_minute: Counter[tuple[str, str, int]] = Counter()

    def check(self, client_id: str, endpoint: str) -> Verdict:
        now = self._wall()
        window_start = math.floor(now / self.window) * self.window
        reset_at = window_start + self.window
        minute = math.floor(now / 60) * 60
        with self._lock:
            bucket = (client_id, endpoint, window_start)
            if bucket not in self._used:
                self._forget_before(window_start)
            allowed = self._used[bucket] < self.limit
            if allowed:
                self._used[bucket] += 1
                self.served_per_minute[(client_id, endpoint, minute)] += 1
            else:
                self.refused_per_minute[(client_id, endpoint, minute)] += 1
            remaining = self.limit - self._used[bucket]
        return Verdict(
            allowed=allowed,
            limit=self.limit,
            remaining=remaining,
            reset_at=math.ceil(reset_at),
            retry_after=max(1, math.ceil(reset_at - now)),
        )

    def _forget_before(self, window_start: float) -> None:
        for bucket in [b for b in self._used if b[2] < window_start]:
            del self._used[bucket]

    def request_counts(self) -> list[dict[str, object]]:
        with self._lock:
            keys = sorted(set(self.served_per_minute) | set(self.refused_per_minute))
            return [
                {
                    "client_id": client,
                    "endpoint": endpoint,
                    "minute": minute,
                    "served": self.served_per_minute[(client, endpoint, minute)],
                    "refused": self.refused_per_minute[(client, endpoint, minute)],
                }
                for client, endpoint, minute in keys
            ]

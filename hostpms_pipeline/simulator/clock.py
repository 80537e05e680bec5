"""The simulator's notion of now: real time, shifted and sped up as configured."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime


class SimulatorClock:
    """``now = origin + (wall - origin) * speed + offset``; ``advance`` moves the offset.

    A speed of 0 freezes the clock, which is what deterministic tests want.
    """

    def __init__(
        self,
        offset_seconds: float = 0.0,
        speed: float = 1.0,
        *,
        wall: Callable[[], float] = time.time,
    ):
        if speed < 0:
            raise ValueError("clock speed must be >= 0")
        self._wall = wall
        self._origin = wall()
        self._offset = offset_seconds
        self._speed = speed
        self._lock = threading.Lock()

    @classmethod
    def starting_at(cls, moment: datetime, speed: float = 1.0) -> SimulatorClock:
        return cls(offset_seconds=moment.timestamp() - time.time(), speed=speed)

    def timestamp(self) -> float:
        with self._lock:
            elapsed = self._wall() - self._origin
            return self._origin + elapsed * self._speed + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the simulator clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

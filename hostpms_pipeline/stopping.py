"""A stop asked of this process (SIGTERM or SIGINT in the ``hostpms`` command), checked by
long work between pages, so a run's further steps (each entity's polling is a step of its
own) end at once instead of starting."""

from __future__ import annotations

import threading

_asked = threading.Event()


class StopRequested(Exception):
    """The process was asked to stop: what is under way is abandoned, no checkpoint moved."""


def ask() -> None:
    _asked.set()


def forget() -> None:
    _asked.clear()


def asked() -> bool:
    return _asked.is_set()


def check() -> None:
    if _asked.is_set():
        raise StopRequested("asked to stop")

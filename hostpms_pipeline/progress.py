"""Progress of long work (syncs, backfills, erasures), for whoever shows it.

The sync path and the erasure call these functions as they go (a landed page, a loaded
batch, a scanned file); they cost nothing when nobody listens. The command line installs
a reporter for the duration of a command (``cli/progress.py``: live bars in a terminal,
plain lines otherwise). Only counts and names pass through here, never records.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Advance:
    scope: str  # a property id, or the work's name ("erasure")
    item: str  # an entity's collection or table, or a stage ("raw files")
    unit: str  # what ``amount`` counts: "records landed", "rows loaded", "files"
    amount: int
    pages: int = 0  # pages this advance adds (landing)
    total: int | None = None  # the item's total, when known


class Reporter(Protocol):
    def advance(self, update: Advance) -> None: ...


log = logging.getLogger(__name__)
_lock = threading.Lock()
_reporters: list[Reporter] = []


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Send every advance to ``reporter`` while the block runs (this process, any thread)."""
    with _lock:
        _reporters.append(reporter)
    try:
        yield reporter
    finally:
        with _lock:
            _reporters.remove(reporter)


def active() -> bool:
    return bool(_reporters)


def advance(update: Advance) -> None:
    for reporter in list(_reporters):
        try:
            reporter.advance(update)
        except Exception:  # noqa: BLE001 - showing progress must never fail the work
            log.debug("progress reporter failed", exc_info=True)


def page_landed(property_id: str, collection: str, records: int) -> None:
    advance(Advance(property_id, collection, "records landed", records, pages=1))


def rows_loaded(property_id: str, table: str, rows: int) -> None:
    advance(Advance(property_id, table, "rows loaded", rows))

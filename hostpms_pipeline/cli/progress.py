"""Live progress on the command line: bars with rates in a terminal, plain lines otherwise.

``with terminal_progress(): ...`` listens to ``hostpms_pipeline.progress`` for the
duration of a command (sync, resync, connect's backfill, gdpr erase, disconnect --purge).
Progress goes to stderr, so stdout keeps the commands' results.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn
from rich.text import Text

from hostpms_pipeline import progress

PLAIN_INTERVAL_SECONDS = 2.0  # a plain line per item at most this often (and a last one)


@dataclass
class Tally:
    """One item's counts (e.g. PT-LIS-001 reservations, records landed)."""

    label: str
    unit: str
    started: float  # when the command's progress began: rates are over the whole command
    amount: int = 0
    pages: int = 0
    total: int | None = None
    printed_at: float = 0.0

    def add(self, update: progress.Advance) -> None:
        self.amount += update.amount
        self.pages += update.pages
        self.total = update.total if update.total is not None else self.total

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.amount / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        of = f"/{self.total:,}" if self.total is not None else ""
        pages = f"{self.pages:,} pages, " if self.pages else ""
        return f"{self.label}: {pages}{self.amount:,}{of} {self.unit} ({self.rate():,.0f}/s)"


class PlainLines:
    """A line per item every few seconds, and each item's last state at the end."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.tallies: dict[tuple[str, str, str], Tally] = {}
        self.lock = threading.Lock()
        self.started = time.monotonic()

    def advance(self, update: progress.Advance) -> None:
        key = (update.scope, update.item, update.unit)
        with self.lock:
            tally = self.tallies.setdefault(
                key, Tally(f"{update.scope} {update.item}", update.unit, self.started)
            )
            tally.add(update)
            now = time.monotonic()
            if now - tally.printed_at >= PLAIN_INTERVAL_SECONDS:
                tally.printed_at = now
                print(tally.line(), file=self.stream, flush=True)

    def close(self) -> None:
        with self.lock:
            for tally in self.tallies.values():
                print(tally.line(), file=self.stream, flush=True)


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f}/s" if speed else "", style="progress.data.speed")


class LiveBars:
    """A rich bar per item: pages, count (of the total when known) and rate."""

    def __init__(self, console: Console):
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[pages]}"),
            TextColumn("{task.completed:,.0f}{task.fields[of]} {task.fields[unit]}"),
            _Rate(),
            console=console,
            transient=False,
        )
        self.tasks: dict[tuple[str, str, str], int] = {}
        self.pages: dict[int, int] = {}
        self.lock = threading.Lock()

    def advance(self, update: progress.Advance) -> None:
        key = (update.scope, update.item, update.unit)
        with self.lock:
            if key not in self.tasks:
                self.tasks[key] = self.bars.add_task(
                    f"{update.scope} {update.item}", total=None, pages="", of="", unit=update.unit
                )
            task = self.tasks[key]
            self.pages[task] = self.pages.get(task, 0) + update.pages
            pages = f"{self.pages[task]:,} pages" if self.pages[task] else ""
            of = f"/{update.total:,}" if update.total is not None else ""
            self.bars.update(task, advance=update.amount, pages=pages, of=of)


@contextmanager
def terminal_progress(stream: TextIO | None = None) -> Iterator[None]:
    """Report progress while the block runs: live bars on a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if stream.isatty():
        bars = LiveBars(Console(file=stream))
        with bars.bars, progress.reporting(bars):
            yield
        return
    lines = PlainLines(stream)
    try:
        with progress.reporting(lines):
            yield
    finally:
        lines.close()

"""Progress of long work: what the sync path reports reaches the terminal, and never hurts the work."""

from __future__ import annotations

import io

from rich.console import Console

from hostpms_pipeline import progress
from hostpms_pipeline.cli.progress import LiveBars, terminal_progress


def test_plain_lines_when_not_a_terminal_name_pages_records_and_rates():
    out = io.StringIO()  # not a terminal
    with terminal_progress(out):
        progress.page_landed("PT-LIS-001", "reservations", 100)
        progress.page_landed("PT-LIS-001", "reservations", 40)
        progress.rows_loaded("PT-LIS-001", "bookings", 140)
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith("PT-LIS-001 reservations: 2 pages, 140 records landed (")
    assert lines[-1].startswith("PT-LIS-001 bookings: 140 rows loaded (")
    assert all(line.endswith("/s)") for line in lines)
    assert not progress.active()  # the reporter is gone with the command


def test_live_bars_in_a_terminal():
    out = io.StringIO()
    bars = LiveBars(Console(file=out, force_terminal=True, width=120))
    with bars.bars, progress.reporting(bars):
        progress.page_landed("ES-MAD-001", "guests", 100)
        progress.advance(progress.Advance("erasure", "raw files", "scanned", 1, total=4))
    shown = out.getvalue()
    assert "ES-MAD-001 guests" in shown and "1 pages" in shown and "100 records landed" in shown
    assert "1/4 scanned" in shown


def test_a_failing_reporter_never_fails_the_work():
    class Broken:
        def advance(self, update):
            raise RuntimeError("display gone")

    with progress.reporting(Broken()):
        progress.page_landed("PT-LIS-001", "rooms", 3)  # no exception

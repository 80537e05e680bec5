"""``hostpms status`` as a table: one row per property, a line per entity or outcome in a cell."""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table

from hostpms_pipeline.operations.status import PropertyStatus


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _lines(counts: dict[str, int], empty: str = "0") -> str:
    shown = [f"{name} {count:,}" for name, count in counts.items() if count]
    return "\n".join(shown) or empty


def render(statuses: list[PropertyStatus], now: datetime, console: Console | None = None) -> None:
    console = console or Console(width=160)
    table = Table(title=f"HostPMS properties at {now:%Y-%m-%d %H:%M:%S} UTC", show_lines=True)
    for header in (
        "property",
        "state",
        "last sync (UTC)",
        "lag",
        "records 24 h",
        "failures",
        "unknown values",
        "rejects",
        "webhooks 24 h",
        "subscription",
    ):
        table.add_column(header)
    for status in statuses:
        state = status.state + (f"\n{', '.join(status.sources)}" if status.sources else "")
        if status.problems:
            state += "\n[red]" + "\n".join(status.problems) + "[/red]"
        subscription = status.subscription.get("state", "none")
        if status.subscription.get("subscription_id"):
            subscription += f"\n{status.subscription['subscription_id']}"
        table.add_row(
            status.property_id,
            state,
            f"{status.last_sync_at:%Y-%m-%d %H:%M:%S}" if status.last_sync_at else "never",
            _ago(status.lag_seconds),
            _lines(status.records_24h),
            str(status.consecutive_failures),
            _lines(status.unknown_values),
            _lines(status.rejects),
            _lines(status.webhooks_24h, "none"),
            subscription,
        )
    console.print(table)
    pending = {s.property_id: s.pending_raw_files for s in statuses if s.pending_raw_files}
    if pending:
        console.print(
            "raw files waiting to be loaded: "
            + ", ".join(f"{p} {count}" for p, count in pending.items())
        )

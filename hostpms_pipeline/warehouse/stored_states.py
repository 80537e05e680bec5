"""Whether an entity's table already holds given states: the poller's light lookup.

Plain SQL, no Arrow: a sync that finds nothing new asks it for every re-read page
and should not load the bulk store (``entity_store``) to do so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg
from psycopg import sql

from hostpms_pipeline.entities.spec import EntitySpec


def holds_states(
    conn: psycopg.Connection, spec: EntitySpec, ids: Sequence[str], updated_at: Sequence[str]
) -> bool:
    """Whether every row id (uuid text) is stored with that ``updated_at`` (timestamp text)
    or a newer one (looked up by the primary key: flat however big the table)."""
    states = set(zip(ids, updated_at, strict=True))
    if not states:
        return False
    # Each array as one literal: psycopg would adapt its items one by one.
    ids, moments = (_array_literal(values) for values in zip(*states, strict=True))
    query = sql.SQL(
        "SELECT count(*) FROM {} AS t"
        " JOIN unnest(%s::uuid[], %s::timestamptz[]) AS s(id, updated_at)"
        " ON t.id = s.id AND t.source_updated_at >= s.updated_at"
    ).format(sql.Identifier(spec.table))
    row = conn.execute(query, (ids, moments)).fetchone()
    return row is not None and row[0] == len(states)


def _array_literal(values: Iterable[str]) -> str:
    """A PostgreSQL array literal of texts, each quoted."""
    quoted = (value.replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return "{" + ",".join(f'"{value}"' for value in quoted) + "}"

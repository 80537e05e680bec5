"""Right of access: every piece of personal data PostgreSQL holds about a person, with the
records it came from, as one JSON document; and the person's audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.entities.schema import row_schema
from hostpms_pipeline.gdpr import audit, people, suppression
from hostpms_pipeline.gdpr.erasure import PersonRef
from hostpms_pipeline.gdpr.keys import Hasher
from hostpms_pipeline.warehouse.pg_copy import copy_query_to_arrow

RECORD_COLUMNS = (
    "id",
    "source",
    "hotel_id",
    "external_id",
    "source_updated_at",
    "raw_location",
    "version",
)


def export_person(
    conn: psycopg.Connection, hasher: Hasher, person: PersonRef, actor: str
) -> dict[str, Any]:
    """The document (and an ``export`` audit row, committed with the caller's transaction)."""
    tables = people.hash_tables(conn, hasher)
    identifiers = people.expand(tables, {(person.kind, person.hash)})
    hashes = {h for _, h in identifiers}
    held: dict[str, list[dict[str, Any]]] = {}
    for table in tables:
        spec = table.spec
        ids = table.ids.filter(pa.array(table.matching(hashes))).to_pylist()
        if not ids:
            continue
        schema = row_schema(spec)
        names = [*RECORD_COLUMNS, *spec.personal_columns]
        query = sql.SQL(
            "SELECT {} FROM {} WHERE id = ANY(%s::uuid[]) ORDER BY hotel_id, external_id"
        ).format(sql.SQL(", ").join(map(sql.Identifier, names)), sql.Identifier(spec.table))
        rows = copy_query_to_arrow(conn, query, [ids], pa.schema([schema.field(n) for n in names]))
        held[spec.table] = [
            {
                "personal_data": {name: row[name] for name in spec.personal_columns},
                "record": {"table": spec.table, **{name: row[name] for name in RECORD_COLUMNS}},
            }
            for row in rows.to_pylist()
        ]
    counts = {table: len(rows) for table, rows in held.items()}
    audit.record(
        conn,
        actor=actor,
        action="export",
        person_hash=person.hash,
        stores=["postgres"],
        counts=counts,
    )
    return {
        "generated_at": datetime.now(UTC).isoformat(),
        "person": {"identifier_hashes": sorted(hashes)},
        "suppressed": bool(suppression.requests_holding(conn, [person.hash])),
        "personal_data": held,
        "counts": counts,
        "tables_searched": [spec.table for spec in ENTITIES if people.stored_identifiers(spec)],
    }


def person_trail(conn: psycopg.Connection, person: PersonRef, actor: str) -> list[audit.AuditRow]:
    """Every audit row about the person: named by this identifier, or by any identifier of an
    erasure request that holds it (a report is audited too)."""
    hashes = {person.hash}
    for request_id in suppression.requests_holding(conn, [person.hash]):
        hashes |= {h for _, h in suppression.of_request(conn, request_id)}
    rows = audit.trail(conn, hashes)
    audit.record(conn, actor=actor, action="report", person_hash=person.hash, stores=["postgres"],
                 counts={"audit_rows": len(rows)})  # fmt: skip
    return rows

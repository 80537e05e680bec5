"""Right to erasure: one engine for every entity, driven by the specs.

Order (docs/gdpr.md explains why it leaves no copy behind, even beside a running sync or
the webhook receiver):

1. **request**: the erasure request is found (a rerun resumes it) or created, and the
   person's identifier hashes, grown from PostgreSQL's rows, go on the suppression list
   in the same transaction. From its commit on, every landing redacts the person.
2. **barrier**: the landing lock is taken exclusively once, so landings that read the
   list before step 1 have finished.
3. **raw store**: every page and webhook drop holding the person is replaced by a redacted
   copy (older S3 versions deleted); identifiers found there join the list too.
4. **epoch**: bumped, so a load whose raw files were read before step 3 does not commit
   (its files stay pending and are read again, redacted).
5. **PostgreSQL**: under the per-property load locks, the person's rows are emptied of
   their personal columns (``erasure="redact"``: bookings keep dates, amounts, statuses,
   ids, versions) or deleted (``erasure="delete"``: the guest profile), their rejected
   records too, and the Parquet days they lie in are queued in the outbox.
6. **Parquet**: every queued day is rewritten from PostgreSQL.

Each step is idempotent, so running an erasure again (after a crash, or twice) is harmless;
the request's ``state`` records how far it got.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from hostpms_pipeline import progress
from hostpms_pipeline.engine import pipeline, transform
from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.entities.schema import day_partition, row_schema, utc_dates
from hostpms_pipeline.entities.spec import EntitySpec, IdentifierKind
from hostpms_pipeline.gdpr import audit, people, suppression
from hostpms_pipeline.gdpr.keys import Hasher
from hostpms_pipeline.gdpr.raw_store import redact_store
from hostpms_pipeline.gdpr.redaction import wait_for_landings
from hostpms_pipeline.lake import raw_integrity
from hostpms_pipeline.lake.storage import ObjectStore
from hostpms_pipeline.warehouse import entity_store, outbox
from hostpms_pipeline.warehouse.pg_copy import copy_query_to_arrow

log = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
STATES = ("suppressed", "raw_redacted", "postgres_erased", "done")
# Test hook: exit abruptly (as a kill would) once the request reaches this state.
CRASH_AFTER_VARIABLE = "HOSTPMS_GDPR_CRASH_AFTER"


class PersonNotGiven(ValueError):
    pass


@dataclass(frozen=True)
class PersonRef:
    """The identifier an erasure, export or report names, as its keyed hash only."""

    kind: IdentifierKind
    hash: str

    @classmethod
    def of(
        cls, hasher: Hasher, kind: IdentifierKind, value: str, property_id: str | None = None
    ) -> PersonRef:
        if kind == "guest_id" and not property_id:
            raise PersonNotGiven("a guest id needs its property id")
        hashed = hasher.of(kind, value, property_id)
        if hashed is None:
            raise PersonNotGiven(f"an empty {kind}")
        return cls(kind, hashed)


@dataclass
class ErasureReport:
    request_id: str
    resumed_from: str | None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def stores(self) -> list[str]:
        return sorted(self.counts)


def _crash_point(state: str) -> None:
    if os.environ.get(CRASH_AFTER_VARIABLE) == state:
        os._exit(9)


def _request(conn: psycopg.Connection, person: PersonRef, actor: str) -> tuple[str, str | None]:
    row = conn.execute(
        "SELECT id::text, state FROM gdpr_erasure_requests WHERE person_hash = %s FOR UPDATE",
        (person.hash,),
    ).fetchone()
    if row is not None:
        return row[0], row[1]
    request_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO gdpr_erasure_requests (id, person_hash, state, requested_by)"
        " VALUES (%s, %s, 'suppressed', %s)",
        (request_id, person.hash, actor),
    )
    return request_id, None


def _set_state(conn: psycopg.Connection, request_id: str, state: str, counts: dict) -> None:
    import orjson

    conn.execute(
        "UPDATE gdpr_erasure_requests SET state = %s, updated_at = now(), counts = %s::jsonb"
        " WHERE id = %s",
        (state, orjson.dumps(counts).decode(), request_id),
    )


def erase(
    connect: Connect,
    raw_store: ObjectStore,
    processed_url: str,
    hasher: Hasher,
    person: PersonRef,
    actor: str,
) -> ErasureReport:
    """Erase the person everywhere the connector keeps data; see the module's steps."""
    with connect() as conn:
        # 1. The request and the suppression list, in one transaction.
        with conn.transaction():
            request_id, resumed_from = _request(conn, person, actor)
            known = suppression.of_request(conn, request_id) | {(person.kind, person.hash)}
            tables = people.hash_tables(conn, hasher)
            identifiers = people.expand(tables, known)
            added = suppression.add(conn, request_id, identifiers)
        report = ErasureReport(request_id, resumed_from)
        report.counts["suppression"] = {"identifiers": len(identifiers), "added": added}
        log.info("erasure %s: %d identifier hash(es) suppressed", request_id, len(identifiers))

        # 2. Landings that read the list before it grew finish first.
        wait_for_landings(conn)

        # 3. The raw store, until no new identifier turns up there.
        raw = None
        for _ in range(3):
            raw = redact_store(raw_store, hasher, {h for _, h in identifiers})
            with conn.transaction():  # a redacted copy is what the ledger now vouches for
                raw_integrity.record_rewritten(conn, raw.rewritten)
            new = raw.identifiers - identifiers
            report.counts.setdefault("raw", {})
            for name, value in raw.counts().items():
                report.counts["raw"][name] = report.counts["raw"].get(name, 0) + value
            if not new:
                break
            identifiers |= new
            with conn.transaction():
                suppression.add(conn, request_id, new)
            wait_for_landings(conn)
        report.counts["suppression"]["identifiers"] = len(identifiers)
        with conn.transaction():
            # 4. Loads that read raw files before they were redacted will not commit.
            suppression.bump_epoch(conn)
            _set_state(conn, request_id, "raw_redacted", report.counts)
        _crash_point("raw_redacted")

        # 5. PostgreSQL, under the load locks.
        hashes = {h for _, h in identifiers}
        with conn.transaction():
            report.counts["postgres"] = erase_postgres(conn, hasher, hashes)
            erased = sum(report.counts["postgres"].values())
            progress.advance(progress.Advance("erasure", "postgres", "rows erased", erased))
            _set_state(conn, request_id, "postgres_erased", report.counts)
        _crash_point("postgres_erased")

        # 6. Parquet: every queued day rewritten from PostgreSQL.
        partitions = 0
        for spec in ENTITIES:
            rewritten = pipeline.export_parquet(conn, spec, processed_url).partitions
            partitions += rewritten
            progress.advance(progress.Advance("erasure", "parquet", "days rewritten", rewritten))
        report.counts["parquet"] = {"partitions_rewritten": partitions}
        # The webhook idempotency store keeps event ids and locations, never bodies.
        report.counts["idempotency"] = {"bodies_kept": 0}
        with conn.transaction():
            _set_state(conn, request_id, "done", report.counts)
            audit.record(
                conn,
                actor=actor,
                action="erasure",
                person_hash=person.hash,
                stores=report.stores,
                counts=report.counts,
            )
    return report


def erase_postgres(conn: psycopg.Connection, hasher: Hasher, hashes: set[str]) -> dict[str, int]:
    """Empty or delete the person's rows of every entity table, and their rejected records."""
    counts: dict[str, int] = {}
    # Every property a load could write (anything landed, anything stored): once these locks
    # are held, no load that checked the epoch before it moved is still uncommitted.
    properties = [p for (p,) in conn.execute("SELECT DISTINCT property_id FROM raw_files")]
    for spec in ENTITIES:
        if not spec.identifiers:
            continue
        stored = entity_store.row_counts(conn, spec)
        entity_store.lock_properties(conn, spec, {*properties, *stored})
        if people.stored_identifiers(spec):
            table = people.hash_table(conn, spec, hasher)
            mask = table.matching(hashes)
            ids = table.ids.filter(pa.array(mask)).to_pylist()
            if ids:
                if spec.erasure == "delete":
                    counts[f"{spec.table}_deleted"] = _delete_rows(conn, spec, ids)
                else:
                    counts[f"{spec.table}_redacted"] = _redact_rows(conn, spec, ids)
        counts[f"rejected_{spec.collection}_deleted"] = _delete_rejected(conn, spec, hasher, hashes)
    return counts


def _queue_days(conn: psycopg.Connection, spec: EntitySpec, moments: list[Any]) -> None:
    values = pa.array(moments, row_schema(spec).field(spec.partition_column).type)
    days = {day_partition(day) for day in utc_dates(values).to_pylist()}
    outbox.enqueue(conn, spec.table, days)


def _delete_rows(conn: psycopg.Connection, spec: EntitySpec, ids: list[str]) -> int:
    rows = conn.execute(
        sql.SQL("DELETE FROM {} WHERE id = ANY(%s::uuid[]) RETURNING {}").format(
            sql.Identifier(spec.table), sql.Identifier(spec.partition_column)
        ),
        (ids,),
    ).fetchall()
    _queue_days(conn, spec, [moment for (moment,) in rows])
    return len(rows)


def _redact_rows(conn: psycopg.Connection, spec: EntitySpec, ids: list[str]) -> int:
    """Empty the personal columns and recompute the state hash (so a redacted replay of the
    same state leaves the version alone)."""
    schema = row_schema(spec)
    query = sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s::uuid[])").format(
        sql.SQL(", ").join(map(sql.Identifier, schema.names)), sql.Identifier(spec.table)
    )
    rows = copy_query_to_arrow(conn, query, [ids], schema)
    for name in spec.personal_columns:
        index = rows.schema.get_field_index(name)
        rows = rows.set_column(index, name, pa.nulls(rows.num_rows, schema.field(name).type))
    hashes = transform.state_hashes(spec, rows)
    assignments = sql.SQL(", ").join(
        sql.SQL("{} = NULL").format(sql.Identifier(name)) for name in spec.personal_columns
    )
    conn.execute(
        sql.SQL(
            "UPDATE {} AS t SET {}, state_hash = v.state_hash"
            " FROM unnest(%s::uuid[], %s::text[]) AS v(id, state_hash) WHERE t.id = v.id"
        ).format(sql.Identifier(spec.table), assignments),
        (rows["id"].to_pylist(), hashes.to_pylist()),
    )
    _queue_days(conn, spec, rows[spec.partition_column].to_pylist())
    return rows.num_rows


def _delete_rejected(
    conn: psycopg.Connection, spec: EntitySpec, hasher: Hasher, hashes: set[str]
) -> int:
    """Rejected records keep no record body, only the HostPMS id: those whose id identifies
    the person (a guest's) are deleted."""
    by_id = [i for i in spec.identifiers if i.field == spec.id_field]
    if not by_id:
        return 0
    rows = conn.execute(
        "SELECT raw_location, record_index, hotel_id, external_id FROM rejected_records"
        " WHERE collection = %s AND external_id IS NOT NULL",
        (spec.collection,),
    ).fetchall()
    doomed = [
        (location, index)
        for location, index, hotel, external_id in rows
        if any(hasher.of(i.kind, external_id, hotel) in hashes for i in by_id)
    ]
    if doomed:
        conn.execute(
            "DELETE FROM rejected_records WHERE (raw_location, record_index) IN"
            " (SELECT * FROM unnest(%s::text[], %s::int[]))",
            ([loc for loc, _ in doomed], [index for _, index in doomed]),
        )
    return len(doomed)

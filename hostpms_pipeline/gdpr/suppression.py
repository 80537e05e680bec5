"""The suppression list: keyed hashes of the identifiers of every erased person.

Every record landed later (polled or from a webhook) that carries one of them is redacted
before it lands (``redaction.py``). Only hashes are stored, never the clear value.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import psycopg

from hostpms_pipeline.entities.spec import IdentifierKind


def add(
    conn: psycopg.Connection, request_id: str, hashes: Iterable[tuple[IdentifierKind, str]]
) -> int:
    """Add ``(kind, hash)`` pairs for an erasure request; returns how many were new."""
    pairs = sorted(set(hashes))
    if not pairs:
        return 0
    cursor = conn.execute(
        "INSERT INTO gdpr_suppression (identifier_hash, kind, request_id)"
        " SELECT h, k, %s FROM unnest(%s::text[], %s::text[]) AS t(h, k)"
        " ON CONFLICT DO NOTHING",
        (request_id, [h for _, h in pairs], [k for k, _ in pairs]),
    )
    return cursor.rowcount


def of_request(conn: psycopg.Connection, request_id: str) -> set[tuple[IdentifierKind, str]]:
    rows = conn.execute(
        "SELECT kind, identifier_hash FROM gdpr_suppression WHERE request_id = %s", (request_id,)
    )
    return {(kind, identifier_hash) for kind, identifier_hash in rows}


def requests_holding(conn: psycopg.Connection, hashes: Iterable[str]) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT request_id::text FROM gdpr_suppression WHERE identifier_hash = ANY(%s)",
        (sorted(set(hashes)),),
    )
    return [request_id for (request_id,) in rows]


class SuppressionCache:
    """The whole list, re-read only when it grew (one cheap query per landing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq: int | None = None
        self._hashes: frozenset[str] = frozenset()

    def current(self, conn: psycopg.Connection) -> frozenset[str]:
        row = conn.execute(
            "SELECT coalesce(max(seq), 0), count(*) FROM gdpr_suppression"
        ).fetchone()
        assert row is not None
        version = row[0] * 1_000_003 + row[1]
        with self._lock:
            if version != self._seq:
                hashes = conn.execute("SELECT identifier_hash FROM gdpr_suppression").fetchall()
                self._hashes = frozenset(h for (h,) in hashes)
                self._seq = version
            return self._hashes


def epoch(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT epoch FROM gdpr_epoch").fetchone()
    return 0 if row is None else row[0]


def bump_epoch(conn: psycopg.Connection) -> int:
    row = conn.execute("UPDATE gdpr_epoch SET epoch = epoch + 1 RETURNING epoch").fetchone()
    assert row is not None
    return row[0]

"""The GDPR audit log: an append-only table (``gdpr_audit_log``) that PostgreSQL itself
keeps append-only (a trigger refuses UPDATE, DELETE and TRUNCATE).

A row says when, who (the OS user, or ``dagster:{run id}``), which person (keyed hash
only), what was done, in which stores, with counts. Never a clear identifier.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg

ACTIONS = ("erasure", "export", "suppression_match", "report", "retention", "property_purge")


def os_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name (a container without one): the uid
        import os

        return f"uid:{os.getuid()}"


def dagster_actor(run_id: str) -> str:
    return f"dagster:{run_id}"


def record(
    conn: psycopg.Connection,
    *,
    actor: str,
    action: str,
    person_hash: str | None,
    stores: Iterable[str] = (),
    counts: dict[str, Any] | None = None,
) -> None:
    """Append one row (in the caller's transaction)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    conn.execute(
        "INSERT INTO gdpr_audit_log (actor, action, person_hash, stores, counts)"
        " VALUES (%s, %s, %s, %s, %s::jsonb)",
        (actor, action, person_hash, sorted(set(stores)), orjson.dumps(counts or {}).decode()),
    )


@dataclass(frozen=True)
class AuditRow:
    at: datetime
    actor: str
    action: str
    person_hash: str | None
    stores: list[str]
    counts: dict[str, Any]


def trail(conn: psycopg.Connection, person_hashes: Iterable[str]) -> list[AuditRow]:
    rows = conn.execute(
        "SELECT at, actor, action, person_hash, stores, counts FROM gdpr_audit_log"
        " WHERE person_hash = ANY(%s) ORDER BY at, id",
        (sorted(set(person_hashes)),),
    )
    return [AuditRow(*row) for row in rows]

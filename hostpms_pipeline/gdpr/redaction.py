"""Redaction of raw records: the same rules for every entity, from its spec.

A redacted record keeps its id and its non-personal fields; the fields its spec names as
personal (``EntitySpec.redacted_fields``: what the personal columns are made from, the
identifiers, other personal fields such as free text) become null, so a redacted page is
still a valid landed page and reprocessing it gives the same non-personal rows. A record
of an entity whose rows *are* the person (``erasure="delete"``, guests) is dropped from
its page instead.

Landing (polling pages and webhook drops) goes through :class:`LandingGuard`: it holds a
shared PostgreSQL advisory lock while it reads the suppression list, redacts and writes the
object, so an erasure (which adds to the list, then takes the lock exclusively once before
it scans the raw store) never misses a copy landed with an older list (docs/gdpr.md).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from hostpms_pipeline.entities.spec import EntitySpec, IdentifierKind
from hostpms_pipeline.gdpr import audit
from hostpms_pipeline.gdpr.keys import Hasher, current_hasher
from hostpms_pipeline.gdpr.suppression import SuppressionCache
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse.database import advisory_key

log = logging.getLogger(__name__)

LANDING_LOCK = advisory_key("gdpr", "landing")
Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def _get(record: dict[str, Any], path: str) -> Any:
    node: Any = record
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set_null(record: dict[str, Any], path: str) -> None:
    *parents, name = path.split(".")
    node: Any = record
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get(name) is not None:
        node[name] = None


def record_identifiers(
    spec: EntitySpec, record: Any, property_id: str | None, hasher: Hasher
) -> list[tuple[IdentifierKind, str]]:
    """``(kind, hash)`` of each identifier the record carries."""
    if not isinstance(record, dict):
        return []
    found = []
    for identifier in spec.identifiers:
        value = _get(record, identifier.field)
        if value is None or isinstance(value, dict | list):
            continue
        hashed = hasher.of(identifier.kind, value, property_id)
        if hashed is not None:
            found.append((identifier.kind, hashed))
    return found


def redact_record(spec: EntitySpec, record: dict[str, Any]) -> dict[str, Any] | None:
    """The record without its personal fields (None: drop it, for ``erasure="delete"`` specs)."""
    if spec.erasure == "delete":
        return None
    redacted = copy.deepcopy(record)
    for path in spec.redacted_fields:
        _set_null(redacted, path)
    return redacted


@dataclass
class Redaction:
    """What redacting one page's records did."""

    records: list[Any]
    # Index (in the original page) of each matched record, and the suppressed hashes it carried.
    matched: dict[int, list[str]] = field(default_factory=dict)
    # Every identifier hash of the matched records (an erasure adds them to the list).
    identifiers: set[tuple[IdentifierKind, str]] = field(default_factory=set)
    dropped: list[int] = field(default_factory=list)  # original indices no longer in the page

    @property
    def changed(self) -> bool:
        return bool(self.matched)


def redact_records(
    spec: EntitySpec,
    records: Sequence[Any],
    property_id: str | None,
    hasher: Hasher,
    suppressed: frozenset[str] | set[str],
) -> Redaction:
    """Redact the records carrying a suppressed identifier hash."""
    result = Redaction(records=[])
    for index, record in enumerate(records):
        identifiers = record_identifiers(spec, record, property_id, hasher)
        hits = [h for _, h in identifiers if h in suppressed]
        if not hits:
            result.records.append(record)
            continue
        result.matched[index] = hits
        result.identifiers.update(identifiers)
        redacted = redact_record(spec, record)
        if redacted is None:
            result.dropped.append(index)
        else:
            result.records.append(redacted)
    return result


class Landing:
    """One landing under the guard: redacts records against the list read when it began."""

    def __init__(self, suppressed: frozenset[str], hasher: Callable[[], Hasher]) -> None:
        self.suppressed = suppressed
        self._hasher = hasher
        self.matches: dict[str, int] = {}  # suppressed hash -> records redacted

    def needs_redaction(self, spec: EntitySpec) -> bool:
        """Whether records of ``spec`` must be looked into (anyone erased, and identifiers to match)."""
        return bool(self.suppressed and spec.identifiers)

    def redact(self, spec: EntitySpec, records: list[Any], property_id: str | None) -> list[Any]:
        if not self.needs_redaction(spec) or not records:
            return records
        result = redact_records(spec, records, property_id, self._hasher(), self.suppressed)
        for hits in result.matched.values():
            self.matches[hits[0]] = self.matches.get(hits[0], 0) + 1
        return result.records


class LandingGuard:
    """Wraps every landing: shared lock, fresh suppression list, redaction, audit of matches."""

    def __init__(self, connect: Connect, settings: Settings | None = None, source: str = "landing"):
        self._connect = connect
        self._settings = settings
        self._source = source
        self._cache = SuppressionCache()

    def _hasher(self) -> Hasher:
        return current_hasher(self._settings)

    @contextmanager
    def landing(self, conn: psycopg.Connection | None = None) -> Iterator[Landing]:
        """A landing under the guard, on ``conn`` (idle; its session holds the shared lock
        meanwhile) or on a connection of its own."""
        with ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self._connect())
            conn.execute("SELECT pg_advisory_lock_shared(%s)", (LANDING_LOCK,))
            try:
                suppressed = self._cache.current(conn)
                conn.commit()
                landing = Landing(suppressed, self._hasher)
                yield landing
                if landing.matches:
                    for person_hash, count in landing.matches.items():
                        audit.record(
                            conn,
                            actor=f"{audit.os_actor()} ({self._source})",
                            action="suppression_match",
                            person_hash=person_hash,
                            stores=["raw"],
                            counts={"records_redacted": count},
                        )
                    conn.commit()
                    log.info(
                        "redacted %d suppressed record(s) before landing",
                        sum(landing.matches.values()),
                    )
            finally:
                conn.rollback()
                conn.execute("SELECT pg_advisory_unlock_shared(%s)", (LANDING_LOCK,))
                conn.commit()


def wait_for_landings(conn: psycopg.Connection) -> None:
    """Wait until every landing that began before now has finished (then let them go on)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (LANDING_LOCK,))
    conn.execute("SELECT pg_advisory_unlock(%s)", (LANDING_LOCK,))
    conn.commit()

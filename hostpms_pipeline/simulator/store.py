"""The served view of the histories: what is visible now, in keyset order.

Each (property, collection) keeps one list of all versions sorted by
``(updated_at, id)``. A page is a slice of it: versions after the cursor (and
after ``updated_since``) that are visible at the simulator's now. A record
touched while a client pages gets a new version at now, so it moves to the end.
"""

from __future__ import annotations

import base64
import bisect
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.simulator.data import PropertyHistories, Version

Position = tuple[datetime, str]  # (updated_at, id): the keyset


class InvalidCursor(ValueError):
    pass


def encode_cursor(position: Position) -> str:
    moment, key = position
    raw = orjson.dumps([contract.format_timestamp(moment), key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, key = orjson.loads(raw)
        return contract.parse_timestamp(moment), str(key)
    except (ValueError, TypeError) as error:
        raise InvalidCursor("cursor is not one this server issued") from error


@dataclass(frozen=True)
class PageRequest:
    updated_since: datetime | None = None
    updated_before: datetime | None = None
    limit: int = contract.DEFAULT_PAGE_LIMIT
    after: Position | None = None


@dataclass(frozen=True)
class ServedPage:
    versions: list[Version]
    next_cursor: str | None


class Timeline:
    """Every version of one collection of one property, in keyset order."""

    def __init__(self, histories: list[list[Version]]):
        self._by_key = {history[0].key: history for history in histories}
        versions = sorted((v for history in histories for v in history), key=_position)
        self._positions = [_position(v) for v in versions]
        self._versions = versions

    def page(self, request: PageRequest, now: datetime) -> ServedPage:
        start = self._start_index(request)
        served: list[Version] = []
        for version in self._scan(start):
            if request.updated_before is not None and version.updated_at >= request.updated_before:
                break
            if version.updated_at > now:
                break
            if version.visible_at(now):
                if len(served) == request.limit:  # one more exists: there is a next page
                    return ServedPage(served, encode_cursor(_position(served[-1])))
                served.append(version)
        return ServedPage(served, None)

    def _start_index(self, request: PageRequest) -> int:
        floors = [bisect.bisect_right(self._positions, request.after)] if request.after else []
        if request.updated_since is not None:
            floors.append(bisect.bisect_left(self._positions, (request.updated_since, "")))
        return max(floors, default=0)

    def _scan(self, start: int) -> Iterator[Version]:
        for index in range(start, len(self._versions)):
            yield self._versions[index]

    def between(self, after: datetime, until: datetime) -> list[Version]:
        """Versions with ``after < updated_at <= until`` (the changes a clock step passed)."""
        lo = bisect.bisect_right(self._positions, (after, "\uffff"))
        hi = bisect.bisect_right(self._positions, (until, "\uffff"))
        return self._versions[lo:hi]

    def current(self, key: str, now: datetime) -> Version | None:
        return next((v for v in reversed(self._by_key.get(key, [])) if v.updated_at <= now), None)

    def latest_keys(self, now: datetime) -> list[str]:
        return [v.key for v in self._versions if v.visible_at(now)]

    def touch(self, key: str, now: datetime) -> Version | None:
        """A new version of the record's current state at ``now``: it moves to the end."""
        history = self._by_key.get(key)
        current = self.current(key, now)
        if history is None or current is None or current.updated_at >= now:
            return None
        record = {**current.record, "updated_at": contract.format_timestamp(now)}
        touched = replace(current, updated_at=now, record=record, event=None)
        index = history.index(current) + 1
        history.insert(index, touched)
        current.superseded_at = now
        touched.superseded_at = history[index + 1].updated_at if index + 1 < len(history) else None
        at = bisect.bisect_right(self._positions, _position(touched))
        self._positions.insert(at, _position(touched))
        self._versions.insert(at, touched)
        return touched


def _position(version: Version) -> Position:
    return version.updated_at, version.key


class Dataset:
    """All properties' timelines; the one lock guards touches against concurrent reads."""

    def __init__(self, histories: dict[str, PropertyHistories]):
        self._timelines = {
            (property_id, collection): Timeline(per_collection[collection])
            for property_id, per_collection in histories.items()
            for collection in contract.COLLECTIONS
        }
        self.property_ids = tuple(histories)
        self.lock = threading.RLock()

    def timeline(self, property_id: str, collection: contract.Collection) -> Timeline:
        return self._timelines[(property_id, collection)]

    def page(
        self, property_id: str, collection: contract.Collection, request: PageRequest, now: datetime
    ) -> ServedPage:
        with self.lock:
            return self.timeline(property_id, collection).page(request, now)

    def touch(
        self, property_id: str, collection: contract.Collection, keys: list[str], now: datetime
    ) -> int:
        with self.lock:
            timeline = self.timeline(property_id, collection)
            return sum(timeline.touch(key, now) is not None for key in keys)

    def changes_between(
        self, property_id: str, after: datetime, until: datetime
    ) -> list[tuple[contract.Collection, Version]]:
        with self.lock:
            return [
                (collection, version)
                for collection in contract.COLLECTIONS
                for version in self.timeline(property_id, collection).between(after, until)
            ]

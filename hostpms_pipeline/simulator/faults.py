"""Fault injection for every row of the contract's error table, and then some.

A fault is a small pydantic model (so the admin HTTP endpoint and the Python API
take the same shape) armed for ``count`` matching collection requests, optionally
only on one collection. Token revocation lives with the tokens (``TokenStore``).
"""

from __future__ import annotations

import threading
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from hostpms_pipeline.hostpms.contract import Collection


class _Fault(BaseModel):
    count: int = Field(default=1, ge=1)
    collection: Collection | None = None  # None: any collection

    def matches(self, collection: str) -> bool:
        return self.collection is None or self.collection == collection


class StatusFault(_Fault):
    """Answer with this status instead of the page (429 and 503 may carry Retry-After)."""

    kind: Literal["status"] = "status"
    status: Literal[429, 500, 503]
    retry_after: int | None = None


class DropConnection(_Fault):
    """Close the socket without answering: the client sees a protocol error."""

    kind: Literal["drop"] = "drop"


class MalformedBody(_Fault):
    """200 with a body that is not JSON."""

    kind: Literal["malformed"] = "malformed"


class SlowResponse(_Fault):
    """Wait this long before answering (normally)."""

    kind: Literal["slow"] = "slow"
    delay_seconds: float = Field(gt=0)


class ChangeWhilePaging(_Fault):
    """After the ``after_page``-th page served, the records served so far are updated."""

    kind: Literal["change_while_paging"] = "change_while_paging"
    after_page: int = Field(default=1, ge=1)


Fault = Annotated[
    StatusFault | DropConnection | MalformedBody | SlowResponse | ChangeWhilePaging,
    Field(discriminator="kind"),
]
FAULT_ADAPTER: TypeAdapter[Fault] = TypeAdapter(Fault)
ResponseFault = StatusFault | DropConnection | MalformedBody | SlowResponse


class PagingWatch:
    """Progress of one armed ``ChangeWhilePaging``: records served since it was armed."""

    def __init__(self, fault: ChangeWhilePaging):
        self.fault = fault
        self.pages = 0
        self.served: dict[tuple[str, str], list[str]] = {}

    def observe(self, property_id: str, collection: str, keys: list[str]) -> bool:
        """Records a served page; True when the records served so far must change now."""
        self.pages += 1
        self.served.setdefault((property_id, collection), []).extend(keys)
        return self.pages == self.fault.after_page


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: list[ResponseFault] = []
        self._watches: list[PagingWatch] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            if isinstance(fault, ChangeWhilePaging):
                self._watches.append(PagingWatch(fault))
            else:
                self._armed.append(fault.model_copy())

    # Shorthands for tests and the CLI.
    def fail(
        self,
        status: Literal[429, 500, 503],
        count: int = 1,
        *,
        collection: Collection | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.add(
            StatusFault(status=status, count=count, collection=collection, retry_after=retry_after)
        )

    def drop_connection(self, count: int = 1, *, collection: Collection | None = None) -> None:
        self.add(DropConnection(count=count, collection=collection))

    def malformed_body(self, count: int = 1, *, collection: Collection | None = None) -> None:
        self.add(MalformedBody(count=count, collection=collection))

    def slow(
        self, delay_seconds: float, count: int = 1, *, collection: Collection | None = None
    ) -> None:
        self.add(SlowResponse(delay_seconds=delay_seconds, count=count, collection=collection))

    def change_while_paging(
        self, after_page: int = 1, *, collection: Collection | None = None
    ) -> None:
        self.add(ChangeWhilePaging(after_page=after_page, collection=collection))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()
            self._watches.clear()

    def pending(self) -> list[dict[str, object]]:
        with self._lock:
            return [f.model_dump() for f in self._armed] + [
                w.fault.model_dump() for w in self._watches
            ]

    def take(self, collection: str) -> ResponseFault | None:
        """The first armed fault for this collection, counting one use of it."""
        with self._lock:
            for fault in self._armed:
                if fault.matches(collection):
                    fault.count -= 1
                    if fault.count == 0:
                        self._armed.remove(fault)
                    return fault
            return None

    def records_to_change(self, property_id: str, collection: str, keys: list[str]) -> list[str]:
        """After a page is served: ids whose records change now, if a watch fires."""
        with self._lock:
            for watch in self._watches:
                if watch.fault.matches(collection) and watch.observe(property_id, collection, keys):
                    self._watches.remove(watch)
                    return watch.served[(property_id, collection)]
            return []

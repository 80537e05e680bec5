"""The properties registry: properties connected with ``hostpms connect``, and disconnected ones.

A deployment syncs ``HOSTPMS_PROPERTY_IDS`` together with the connected properties here;
a property disconnected here is left out of both (``active_property_ids``). None of these
functions commits: they run in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row

SubscriptionState = str  # none / active / unsubscribed / failed


@dataclass(frozen=True)
class RegisteredProperty:
    property_id: str
    client_id: str | None
    connected_at: datetime
    disconnected_at: datetime | None
    history_from: datetime | None
    webhook_url: str | None
    subscription_id: str | None
    subscription_state: SubscriptionState
    purged_at: datetime | None

    @property
    def connected(self) -> bool:
        return self.disconnected_at is None


_COLUMNS = (
    "property_id, client_id, connected_at, disconnected_at, history_from, webhook_url,"
    " subscription_id, subscription_state, purged_at"
)


def get(conn: psycopg.Connection, property_id: str) -> RegisteredProperty | None:
    with conn.cursor(row_factory=class_row(RegisteredProperty)) as cur:
        return cur.execute(
            f"SELECT {_COLUMNS} FROM properties WHERE property_id = %s", (property_id,)
        ).fetchone()


def all_registered(conn: psycopg.Connection) -> list[RegisteredProperty]:
    with conn.cursor(row_factory=class_row(RegisteredProperty)) as cur:
        return cur.execute(f"SELECT {_COLUMNS} FROM properties ORDER BY connected_at").fetchall()


def connect(
    conn: psycopg.Connection,
    property_id: str,
    *,
    client_id: str,
    history_from: datetime | None,
    webhook_url: str | None,
    subscription_id: str | None,
    subscription_state: SubscriptionState,
) -> RegisteredProperty:
    """Register (or re-register) the property as connected; a reconnection starts afresh."""
    with conn.cursor(row_factory=class_row(RegisteredProperty)) as cur:
        row = cur.execute(
            f"""
            INSERT INTO properties AS p (property_id, client_id, history_from, webhook_url,
                                         subscription_id, subscription_state)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (property_id) DO UPDATE SET
                client_id = EXCLUDED.client_id,
                connected_at = CASE WHEN p.disconnected_at IS NULL THEN p.connected_at
                                    ELSE now() END,
                disconnected_at = NULL,
                purged_at = NULL,
                history_from = EXCLUDED.history_from,
                webhook_url = EXCLUDED.webhook_url,
                subscription_id = EXCLUDED.subscription_id,
                subscription_state = EXCLUDED.subscription_state,
                updated_at = now()
            RETURNING {_COLUMNS}
            """,
            (property_id, client_id, history_from, webhook_url, subscription_id,
             subscription_state),
        ).fetchone()  # fmt: skip
    assert row is not None
    return row


def disconnect(
    conn: psycopg.Connection, property_id: str, *, subscription_state: SubscriptionState
) -> None:
    """Mark the property disconnected (registering it if it came from settings only)."""
    conn.execute(
        """
        INSERT INTO properties AS p (property_id, disconnected_at, subscription_state)
        VALUES (%s, now(), %s)
        ON CONFLICT (property_id) DO UPDATE SET
            disconnected_at = COALESCE(p.disconnected_at, now()),
            subscription_state = EXCLUDED.subscription_state,
            updated_at = now()
        """,
        (property_id, subscription_state),
    )


def mark_purged(conn: psycopg.Connection, property_id: str) -> None:
    conn.execute(
        "UPDATE properties SET purged_at = now(), updated_at = now() WHERE property_id = %s",
        (property_id,),
    )


def active_property_ids(conn: psycopg.Connection, configured: Iterable[str]) -> list[str]:
    """``configured`` (HOSTPMS_PROPERTY_IDS) less the disconnected, then the connected ones."""
    rows = conn.execute(
        "SELECT property_id, disconnected_at IS NULL FROM properties ORDER BY connected_at"
    ).fetchall()
    disconnected = {property_id for property_id, connected in rows if not connected}
    active = [property_id for property_id in configured if property_id not in disconnected]
    active += [p for p, connected in rows if connected and p not in active]
    return active


def disconnected_ids(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute("SELECT property_id FROM properties WHERE disconnected_at IS NOT NULL")
    return {property_id for (property_id,) in rows}


def is_disconnected(conn: psycopg.Connection, property_id: str) -> bool:
    row = conn.execute(
        "SELECT disconnected_at IS NOT NULL FROM properties WHERE property_id = %s",
        (property_id,),
    ).fetchone()
    return bool(row and row[0])


def history_from(conn: psycopg.Connection, property_id: str) -> datetime | None:
    """Where a first pass of the property starts (its ``--history-months``); None: everything."""
    row = conn.execute(
        "SELECT history_from FROM properties WHERE property_id = %s AND disconnected_at IS NULL",
        (property_id,),
    ).fetchone()
    return row[0] if row else None

"""The properties a deployment syncs, for code outside Dagster (the command line)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import psycopg

from hostpms_pipeline.settings import Settings
from hostpms_pipeline.sync.connections import Connections
from hostpms_pipeline.warehouse import properties

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def connect_factory(settings: Settings) -> Connect:
    """Connections to the migrated warehouse (``HOSTPMS_DATABASE_URL``, else the embedded one):
    the sync's own (``sync/connections.py``), so the schema is migrated once per process."""
    return Connections(settings).connect


def active_properties(settings: Settings) -> list[str]:
    """``HOSTPMS_PROPERTY_IDS`` and the connected properties, less the disconnected ones.

    PostgreSQL unreachable: ``HOSTPMS_PROPERTY_IDS`` alone, whose syncs then each fail with
    the one line naming the cause (as before there was a registry)."""
    try:
        with connect_factory(settings)() as conn:
            return properties.active_property_ids(conn, settings.property_ids)
    except psycopg.OperationalError:
        return list(settings.property_ids)

"""The properties a deployment syncs, for code outside Dagster (the command line)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg

from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import database, properties

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


def connect_factory(settings: Settings) -> Connect:
    """Connections to the migrated warehouse (``HOSTPMS_DATABASE_URL``, else the embedded one)."""
    url = database.database_url(settings)
    database.migrate(url, settings.db_schema)

    @contextmanager
    def connect() -> Iterator[psycopg.Connection]:
        with database.connect(url, settings.db_schema) as conn:
            yield conn

    return connect


def active_properties(settings: Settings) -> list[str]:
    """``HOSTPMS_PROPERTY_IDS`` and the connected properties, less the disconnected ones.

    PostgreSQL unreachable: ``HOSTPMS_PROPERTY_IDS`` alone, whose syncs then each fail with
    the one line naming the cause (as before there was a registry)."""
    try:
        with connect_factory(settings)() as conn:
            return properties.active_property_ids(conn, settings.property_ids)
    except psycopg.OperationalError:
        return list(settings.property_ids)

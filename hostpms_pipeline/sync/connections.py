"""What a sync reaches, built from settings (the embedded defaults included), no Dagster."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import psycopg

from hostpms_pipeline.hostpms.client import HostPMSClient
from hostpms_pipeline.hostpms.credentials import SecretProvider
from hostpms_pipeline.hostpms.rate_limiter import PostgresRateLimiter, RateLimit
from hostpms_pipeline.lake.storage import ObjectStore, open_store
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import database


class Connections:
    """Nothing is reached until first used, so a wrong setting fails the property's sync
    (in its one line) rather than the command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.raw: ObjectStore = open_store(settings.resolved_raw_url)
        self.processed_url = settings.resolved_processed_url
        self._database_url: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Connections:
        return cls(settings)

    def _url(self) -> str:
        with self._lock:
            if self._database_url is None:
                url = database.database_url(self.settings)
                _migrate_once(url, self.settings.db_schema)
                self._database_url = url
            return self._database_url

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        with database.connect(self._url(), self.settings.db_schema) as conn:
            yield conn

    @contextmanager
    def client(self, property_id: str) -> Iterator[HostPMSClient]:
        settings = self.settings
        base_url = settings.api_base_url
        if not base_url:  # the embedded simulator; its package is not imported otherwise
            from hostpms_pipeline.simulator import embedded

            base_url = embedded.base_url(settings)
        limiter = PostgresRateLimiter(
            self.connect, RateLimit(requests=settings.rate_limit_per_minute)
        )
        with HostPMSClient(
            base_url,
            SecretProvider(settings).oauth_credentials(property_id),
            timeout=settings.http_timeout_seconds,
            page_limit=settings.page_limit,
            limiter=limiter,
        ) as client:
            yield client


@cache
def _migrate_once(url: str, schema: str) -> None:
    """Migrations run once per process and database, however many commands build connections."""
    database.migrate(url, schema)

"""Dagster resources: one ``ConfigurableResource`` per external system.

Each falls back to the embedded default when its URL is not set: the HostPMS
simulator, a local folder for each bucket, a private PostgreSQL server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import psycopg
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    EnvVar,
    InputContext,
    OutputContext,
)
from dagster_pyspark import LazyPySparkResource
from pydantic import PrivateAttr, SecretStr

from hostpms_pipeline.defs.alerts import LogNotifier, Notifier, SlackNotifier, SNSNotifier
from hostpms_pipeline.defs.engine_resource import EngineResource
from hostpms_pipeline.engine.spark.session import spark_config
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import HostPMSClient
from hostpms_pipeline.hostpms.credentials import SecretProvider
from hostpms_pipeline.hostpms.rate_limiter import PostgresRateLimiter, RateLimit
from hostpms_pipeline.lake.storage import ObjectStore, open_store
from hostpms_pipeline.settings import Settings, get_settings
from hostpms_pipeline.simulator import embedded
from hostpms_pipeline.warehouse import database


class PostgresResource(ConfigurableResource):
    """The warehouse; a private embedded server when ``url`` is not set."""

    url: str | None = None
    db_schema: str = "public"

    # Migrations run once per process and database, however often resources are rebuilt.
    _migrated: ClassVar[set[tuple[str, str]]] = set()

    def resolved_url(self) -> str:
        if self.url:
            return self.url
        return database.database_url(get_settings())

    @contextmanager
    def connect(self) -> Iterator[psycopg.Connection]:
        url = self.resolved_url()
        if (url, self.db_schema) not in self._migrated:
            database.migrate(url, self.db_schema)
            self._migrated.add((url, self.db_schema))
        with database.connect(url, self.db_schema) as conn:
            yield conn


class HostPMSResource(ConfigurableResource):
    """The HostPMS API; the embedded simulator when ``base_url`` is not set."""

    base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    use_secrets_manager: bool = False
    page_limit: int = 100
    timeout_seconds: float = 30.0
    rate_limit_per_minute: int = contract.RATE_LIMIT_PER_MINUTE
    # Holds the request schedule every process shares, so parallel runs stay under the limit.
    postgres: PostgresResource

    def resolved_base_url(self) -> str:
        return self.base_url or embedded.base_url(get_settings())

    def _secrets(self) -> SecretProvider:
        settings = get_settings().model_copy(
            update={
                "api_base_url": self.base_url,
                "client_id": self.client_id,
                "client_secret": SecretStr(self.client_secret) if self.client_secret else None,
                "use_secrets_manager": self.use_secrets_manager,
            }
        )
        return SecretProvider(settings)

    @contextmanager
    def client(self, property_id: str) -> Iterator[HostPMSClient]:
        credentials = self._secrets().oauth_credentials(property_id)
        limiter = PostgresRateLimiter(
            self.postgres.connect, RateLimit(requests=self.rate_limit_per_minute)
        )
        with HostPMSClient(
            self.resolved_base_url(),
            credentials,
            timeout=self.timeout_seconds,
            page_limit=self.page_limit,
            limiter=limiter,
        ) as client:
            yield client


class ObjectStoreResource(ConfigurableResource):
    """A bucket: ``s3://bucket[/prefix]`` or a local folder."""

    url: str

    def open(self) -> ObjectStore:
        return open_store(self.url)


class NotifierResource(ConfigurableResource):
    """Where alerts go: a Slack incoming webhook, an SNS topic, else the log."""

    slack_webhook_url: str | None = None
    sns_topic_arn: str | None = None

    def notifier(self) -> Notifier:
        if self.slack_webhook_url:
            return SlackNotifier(self.slack_webhook_url)
        if self.sns_topic_arn:
            return SNSNotifier(self.sns_topic_arn)
        return LogNotifier()


class BatchIOManager(ConfigurableIOManager):
    """Hands a run's batches from step to step in memory: they hold guest data and are never
    pickled to the instance's storage (a sync runs in one process, the in-process executor).

    A step whose upstream batch was not made in this run (an asset chosen alone in the
    UI) gets None, and has nothing new to load.
    """

    _batches: dict[tuple[str, ...], object] = PrivateAttr(default_factory=dict)

    def handle_output(self, context: OutputContext, obj: object) -> None:
        self._batches[tuple(context.get_identifier())] = obj

    def load_input(self, context: InputContext) -> object:
        upstream = context.upstream_output
        if upstream is None:
            return None
        return self._batches.pop(tuple(upstream.get_identifier()), None)


def engine_resource(settings: Settings) -> EngineResource:
    config = spark_config(settings.spark_master, settings.spark_connect_url)
    return EngineResource(
        name=settings.engine,
        staging_url=settings.resolved_spark_staging_url,
        pyspark=LazyPySparkResource(spark_config=config),
    )


def _secret_env(name: str) -> EnvVar | None:
    return EnvVar(name) if os.getenv(name) else None


def build_resources(settings: Settings) -> dict[str, object]:
    """Resources from settings; secrets stay ``EnvVar`` so Dagster never displays them."""
    postgres = PostgresResource(
        url=_secret_env("HOSTPMS_DATABASE_URL"), db_schema=settings.db_schema
    )
    return {
        "hostpms": HostPMSResource(
            base_url=settings.api_base_url,
            client_id=settings.client_id,
            client_secret=_secret_env("HOSTPMS_CLIENT_SECRET"),
            use_secrets_manager=settings.use_secrets_manager,
            page_limit=settings.page_limit,
            timeout_seconds=settings.http_timeout_seconds,
            rate_limit_per_minute=settings.rate_limit_per_minute,
            postgres=postgres,
        ),
        "raw_store": ObjectStoreResource(url=settings.resolved_raw_url),
        "processed_store": ObjectStoreResource(url=settings.resolved_processed_url),
        "postgres": postgres,
        "batch_io_manager": BatchIOManager(),
        "engine": engine_resource(settings),
        "notifier": NotifierResource(
            slack_webhook_url=_secret_env("HOSTPMS_ALERT_SLACK_WEBHOOK_URL"),
            sns_topic_arn=settings.alert_sns_topic_arn,
        ),
    }

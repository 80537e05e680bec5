"""The receiver wired from settings, and served with uvicorn (``hostpms serve-webhooks``)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import uvicorn
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from uvicorn.config import LOGGING_CONFIG

from hostpms_pipeline.gdpr.redaction import LandingGuard
from hostpms_pipeline.hostpms.credentials import MissingSecret, SecretProvider
from hostpms_pipeline.lake.storage import open_store
from hostpms_pipeline.settings import Settings, get_settings
from hostpms_pipeline.warehouse import database, properties
from hostpms_pipeline.webhooks.acceptance import SecretLookup, WebhookAcceptor
from hostpms_pipeline.webhooks.idempotency import open_idempotency_store, postgres_pool
from hostpms_pipeline.webhooks.outcome_log import Connect, OutcomeLog
from hostpms_pipeline.webhooks.receiver import create_app

log = logging.getLogger(__name__)
APP_FACTORY = "hostpms_pipeline.webhooks.server:build_app"
SHUTDOWN_GRACE_SECONDS = 5


def secret_lookup(
    settings: Settings, provider: SecretProvider, registry: Connect | None = None
) -> SecretLookup:
    """Secrets Manager: a property is known when its secret exists (a new hotel needs no
    redeploy). Otherwise a property is known when it is in ``HOSTPMS_PROPERTY_IDS`` or was
    connected with ``hostpms connect`` (its secret then comes from the local secrets file).

    With the properties ``registry`` (PostgreSQL), read at every delivery, a property
    connected or disconnected while the receiver runs is known or refused at once.
    """

    def secrets_of(property_id: str) -> Sequence[str]:
        connected = False
        if registry is not None:
            with registry() as conn:
                row = properties.get(conn, property_id)
            if row is not None and not row.connected:
                raise MissingSecret(f"property {property_id!r} is disconnected")
            connected = row is not None
        known = settings.use_secrets_manager or connected or property_id in settings.property_ids
        if not known:
            raise MissingSecret(f"property {property_id!r} is not configured")
        return provider.webhook_secrets(property_id)

    return secrets_of


def receiver_pool(settings: Settings) -> ConnectionPool | None:
    """PostgreSQL for the properties registry and the outcome counts; None for a receiver
    configured without it (DynamoDB idempotency and no ``HOSTPMS_DATABASE_URL``)."""
    if settings.idempotency_table and settings.database_url is None:
        return None
    url = database.database_url(settings)
    database.migrate(url, settings.db_schema)
    return postgres_pool(url, settings.db_schema)


def landing_guard(settings: Settings) -> LandingGuard | None:
    """Redaction of erased persons before landing, against the suppression list in PostgreSQL.

    None (with a warning) for a receiver configured without PostgreSQL (DynamoDB idempotency
    and no ``HOSTPMS_DATABASE_URL``): it cannot read the suppression list (docs/gdpr.md).
    """
    if settings.idempotency_table and settings.database_url is None:
        log.warning("no HOSTPMS_DATABASE_URL: webhooks land without GDPR suppression")
        return None
    url = database.database_url(settings)
    database.migrate(url, settings.db_schema)
    return LandingGuard(postgres_pool(url, settings.db_schema).connection, settings, "webhook")


def build_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    pool = receiver_pool(settings)
    registry = pool.connection if pool is not None else None
    acceptor = WebhookAcceptor(
        secrets=secret_lookup(settings, SecretProvider(settings), registry),
        store=open_store(settings.resolved_raw_url),
        idempotency=open_idempotency_store(settings),
        landing_guard=landing_guard(settings),
    )
    outcomes = OutcomeLog(registry) if registry is not None else None
    return create_app(acceptor, outcomes=outcomes)


def log_config() -> dict[str, Any]:
    """uvicorn's logging, plus the receiver's own lines (JSON already) on stderr.

    Given to uvicorn rather than set up here: uvicorn applies it in every worker process
    it spawns, which a ``logging.basicConfig`` in this process would not reach.
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["plain"] = {"format": "%(message)s"}
    config["handlers"]["plain"] = {
        "formatter": "plain",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["plain"], "level": "INFO"}
    return config


def serve(host: str = "127.0.0.1", port: int = 8500, workers: int | None = None) -> None:
    """Serve the receiver until interrupted (blocking), settings from the environment.

    ``workers`` uvicorn processes (default: ``$WEB_CONCURRENCY``, else 1) share the port;
    each builds its own app, so each has its own connection pool and metrics.
    """
    uvicorn.run(
        APP_FACTORY,
        factory=True,  # an import string: worker processes build the app themselves
        host=host,
        port=port,
        workers=workers,
        # uvicorn's own access log would repeat each request; the receiver logs one JSON line.
        access_log=False,
        log_config=log_config(),
        # On SIGTERM/SIGINT, deliveries in flight get this long to finish (HostPMS retries
        # any that do not), so a stop takes seconds, not as long as the slowest client.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )

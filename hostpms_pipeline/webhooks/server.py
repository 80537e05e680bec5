"""The receiver wired from settings, and served with uvicorn (``hostpms serve-webhooks``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import uvicorn
from starlette.applications import Starlette

from hostpms_pipeline.credentials import MissingSecret, SecretProvider
from hostpms_pipeline.settings import Settings, get_settings
from hostpms_pipeline.storage import open_store
from hostpms_pipeline.webhooks.acceptance import SecretLookup, WebhookAcceptor
from hostpms_pipeline.webhooks.idempotency import open_idempotency_store
from hostpms_pipeline.webhooks.receiver import create_app

APP_FACTORY = "hostpms_pipeline.webhooks.server:build_app"


def secret_lookup(settings: Settings, provider: SecretProvider) -> SecretLookup:
    """Secrets Manager: a property is known when its secret exists (a new hotel needs no
    redeploy). Settings: one secret serves every property, so ``HOSTPMS_PROPERTY_IDS``
    says which properties are known."""

    def secrets_of(property_id: str) -> Sequence[str]:
        if not settings.use_secrets_manager and property_id not in settings.property_ids:
            raise MissingSecret(f"property {property_id!r} is not configured")
        return provider.webhook_secrets(property_id)

    return secrets_of


def build_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    acceptor = WebhookAcceptor(
        secrets=secret_lookup(settings, SecretProvider(settings)),
        store=open_store(settings.resolved_raw_url),
        idempotency=open_idempotency_store(settings),
    )
    return create_app(acceptor)


def serve(host: str = "127.0.0.1", port: int = 8500, workers: int | None = None) -> None:
    """Serve the receiver until interrupted (blocking), settings from the environment.

    ``workers`` uvicorn processes (default: ``$WEB_CONCURRENCY``, else 1) share the port;
    each builds its own app, so each has its own connection pool and metrics.
    """
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # access lines are JSON already
    uvicorn.run(
        APP_FACTORY,
        factory=True,  # an import string: worker processes build the app themselves
        host=host,
        port=port,
        workers=workers,
        # uvicorn's own access log would repeat each request; the receiver logs one JSON line.
        access_log=False,
    )

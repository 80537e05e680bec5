"""Connecting a property (credentials checked and stored, webhooks subscribed, registered)
and disconnecting it (unsubscribed, secrets deleted, no longer synced; optionally purged).

Both are safe to run again. The first sync (the history backfill) is started by the
command line once ``connect_property`` has returned (``cli/operator.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import psycopg
from dagster import DagsterInstance

from hostpms_pipeline.defs.partitions import (
    PARTITION_TIMEZONE,
    register_properties,
    unregister_property,
)
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import Credentials, HostPMSClient, HostPMSError
from hostpms_pipeline.hostpms.credentials import MissingSecret, SecretProvider
from hostpms_pipeline.hostpms.secret_store import SecretStore
from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import properties

log = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]
ClientFactory = Callable[[Credentials], HostPMSClient]


class NotConnected(Exception):
    """``disconnect`` of a property that is neither configured nor connected."""


@dataclass
class ConnectReport:
    property_id: str
    history_from: datetime
    subscription_state: str
    subscription_id: str | None
    subscribed_now: bool  # False: an earlier run's subscription was kept
    reconnected: bool  # the property had been disconnected before


@dataclass
class DisconnectReport:
    property_id: str
    unsubscribed: bool
    unsubscribe_error: str | None
    secrets_deleted: list[str] = field(default_factory=list)
    already_disconnected: bool = False


def history_start(months: int, now: datetime | None = None) -> datetime:
    """The first day (Lisbon) of the month ``months`` months before the current one, in UTC."""
    zone = ZoneInfo(PARTITION_TIMEZONE)
    today = (now or datetime.now(UTC)).astimezone(zone).date()
    index = today.year * 12 + today.month - 1 - months
    first = date(index // 12, index % 12 + 1, 1)
    return datetime(first.year, first.month, 1, tzinfo=zone).astimezone(UTC)


def connect_property(
    *,
    property_id: str,
    credentials: Credentials,
    webhook_url: str | None,
    history_months: int,
    connect: Connect,
    secrets: SecretStore,
    client_for: ClientFactory,
    instance: DagsterInstance,
) -> ConnectReport:
    """Check the credentials (one token request), then store, subscribe and register.

    Nothing is stored or subscribed when HostPMS refuses the credentials (``invalid_client``)
    or does not know the property.
    """
    with client_for(credentials) as client:
        client.check_credentials()  # raises InvalidCredentials: nothing stored yet
        client.fetch_page(property_id, "reservations", {contract.PARAM_LIMIT: 1})  # 404: unknown
        with connect() as conn:
            existing = properties.get(conn, property_id)
        secrets.store(property_id, credentials, webhook_secret=None)
        keep = (
            existing is not None
            and existing.connected
            and existing.subscription_state == "active"
            and (webhook_url is None or existing.webhook_url == webhook_url)
            and secrets.webhook_secrets(property_id)
        )
        subscription_id = existing.subscription_id if keep and existing else None
        state = "active" if keep else "none"
        url = existing.webhook_url if keep and existing else webhook_url
        if webhook_url is not None and not keep:
            if existing is not None and existing.subscription_state == "active":
                _unsubscribe_quietly(client, existing.subscription_id)  # the old URL's
            subscription = client.subscribe(property_id, webhook_url, contract.WEBHOOK_EVENTS)
            secrets.store(property_id, credentials, webhook_secret=subscription.secret)
            subscription_id, state = subscription.subscription_id, "active"
    since = history_start(history_months)
    with connect() as conn, conn.transaction():
        properties.connect(
            conn,
            property_id,
            client_id=credentials.client_id,
            history_from=since,
            webhook_url=url,
            subscription_id=subscription_id,
            subscription_state=state,
        )
    register_properties(instance, [property_id])
    return ConnectReport(
        property_id,
        since,
        state,
        subscription_id,
        subscribed_now=webhook_url is not None and not keep,
        reconnected=existing is not None and not existing.connected,
    )


def _unsubscribe_quietly(client: HostPMSClient, subscription_id: str | None) -> str | None:
    """Unsubscribe; the reason it failed, if it did (the receiver refuses the deliveries anyway)."""
    if not subscription_id:
        return None
    try:
        client.unsubscribe(subscription_id)
    except HostPMSError as error:
        log.warning("could not unsubscribe %s: %s", subscription_id, error)
        return str(error)
    return None


def disconnect_property(
    *,
    property_id: str,
    settings: Settings,
    connect: Connect,
    secrets: SecretStore,
    client_for: ClientFactory,
    instance: DagsterInstance,
) -> DisconnectReport:
    """Unsubscribe, stop syncing (registry, Dagster partition), delete the stored secrets."""
    with connect() as conn:
        existing = properties.get(conn, property_id)
    configured = property_id in settings.property_ids
    if existing is None and not configured:
        raise NotConnected(f"{property_id} is not connected (nor in HOSTPMS_PROPERTY_IDS)")
    report = DisconnectReport(property_id, False, None)
    report.already_disconnected = existing is not None and not existing.connected
    state = existing.subscription_state if existing else "none"
    if existing is not None and existing.subscription_state == "active":
        try:
            credentials = SecretProvider(settings).oauth_credentials(property_id)
            with client_for(credentials) as client:
                report.unsubscribe_error = _unsubscribe_quietly(client, existing.subscription_id)
        except (MissingSecret, HostPMSError) as error:
            report.unsubscribe_error = str(error)
        report.unsubscribed = report.unsubscribe_error is None
        state = "unsubscribed" if report.unsubscribed else "failed"
    # The registry first: from its commit, no sync is scheduled and the receiver refuses.
    with connect() as conn, conn.transaction():
        properties.disconnect(conn, property_id, subscription_state=state)
    report.secrets_deleted = secrets.delete(property_id)
    unregister_property(instance, property_id)
    return report

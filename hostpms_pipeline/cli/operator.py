"""``hostpms connect``, ``hostpms status`` and ``hostpms disconnect``: a property's life cycle
for an IT administrator (docs/operations.md). Output names properties, counts and
subscription ids, never a secret."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click
import orjson

from hostpms_pipeline import property_ids as property_id_rule
from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.settings import get_settings

DEFAULT_HISTORY_MONTHS = 24
EXIT_CONFIGURATION = 2  # as the other commands (cli/commands.py)


def _check_property_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not property_id_rule.is_valid(value):
        raise click.BadParameter(f"{value[:80]!r} is not a property id ({property_id_rule.RULE})")
    return value


def _dagster_home() -> None:
    from hostpms_pipeline.cli.commands import _dagster_home as prepare

    prepare()


def _client_factory(settings):
    from hostpms_pipeline.defs.resources import build_resources
    from hostpms_pipeline.hostpms.client import HostPMSClient

    hostpms = build_resources(settings)["hostpms"]
    base_url = hostpms.resolved_base_url()
    return lambda credentials: HostPMSClient(
        base_url,
        credentials,
        timeout=settings.http_timeout_seconds,
        page_limit=settings.page_limit,
    )


def _secrets_place(settings) -> str:
    if settings.use_secrets_manager:
        return "AWS Secrets Manager (hostpms/{property}/...)"
    return str(settings.resolved_secrets_file)


@click.command()
@click.option(
    "--property-id", required=True, callback=_check_property_id, help="The HostPMS property."
)
@click.option("--client-id", required=True, help="The property's HostPMS OAuth client id.")
@click.option(
    "--client-secret",
    required=True,
    prompt=True,
    hide_input=True,
    help="Its client secret (leave it out to be asked for it, unseen).",
)
@click.option(
    "--webhook-url", help="Public URL of the receiver, e.g. https://host/webhooks/hostpms."
)
@click.option(
    "--history-months",
    default=DEFAULT_HISTORY_MONTHS,
    show_default=True,
    type=click.IntRange(0, 600),
    help="How many months of history the first sync loads.",
)
@click.option("--no-backfill", is_flag=True, help="Only connect; the hourly schedule syncs it.")
def connect(
    property_id: str,
    client_id: str,
    client_secret: str,
    webhook_url: str | None,
    history_months: int,
    no_backfill: bool,
) -> None:
    """Connect a HostPMS property: check and store its credentials, subscribe its webhooks,
    register it for syncing, and load its history. Safe to run again."""
    from dagster import DagsterInstance

    from hostpms_pipeline.cli.progress import terminal_progress
    from hostpms_pipeline.cli.runner import sync_properties
    from hostpms_pipeline.hostpms.client import Credentials, InvalidCredentials, UnknownProperty
    from hostpms_pipeline.hostpms.secret_store import open_secret_store
    from hostpms_pipeline.operations.connection import connect_property
    from hostpms_pipeline.operations.registry import connect_factory

    settings = get_settings()
    _dagster_home()
    try:
        report = connect_property(
            property_id=property_id,
            credentials=Credentials(client_id, client_secret),
            webhook_url=webhook_url,
            history_months=history_months,
            connect=connect_factory(settings),
            secrets=open_secret_store(settings),
            client_for=_client_factory(settings),
            instance=DagsterInstance.get(),
        )
    except InvalidCredentials:
        click.echo(
            f"hostpms connect: HostPMS refused client id {client_id!r} (invalid_client); "
            "check --client-id and --client-secret. Nothing was stored.",
            err=True,
        )
        sys.exit(EXIT_CONFIGURATION)
    except UnknownProperty:
        click.echo(
            f"hostpms connect: HostPMS does not know property {property_id} for client id "
            f"{client_id!r} (404). Nothing was stored.",
            err=True,
        )
        sys.exit(EXIT_CONFIGURATION)
    click.echo(
        f"{property_id}: credentials accepted by HostPMS, stored in {_secrets_place(settings)}"
    )
    if report.subscription_state == "active":
        how = "subscribed" if report.subscribed_now else "already subscribed"
        click.echo(
            f"{property_id}: webhooks {how} ({len(contract.WEBHOOK_EVENTS)} events, {report.subscription_id})"
        )
    else:
        click.echo(
            f"{property_id}: no webhooks (give --webhook-url to subscribe); hourly polling only"
        )
    click.echo(f"{property_id}: connected; history from {report.history_from.date().isoformat()}")
    if no_backfill:
        return
    from hostpms_pipeline.cli.commands import _exit_for, _stoppable

    with _stoppable(), terminal_progress():
        outcomes = sync_properties([property_id], echo=click.echo)
    _exit_for(outcomes, "connect")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
def status(as_json: bool) -> None:
    """Each property's sync status: last sync, lag, records, failures, rejects, webhooks."""
    from dagster import DagsterInstance

    from hostpms_pipeline.operations.registry import connect_factory
    from hostpms_pipeline.operations.status import collect

    settings = get_settings()
    _dagster_home()
    now = datetime.now(UTC)
    with connect_factory(settings)() as conn:
        statuses = collect(conn, DagsterInstance.get(), settings.property_ids, now)
    if as_json:
        document = {
            "generated_at": now.isoformat(),
            "properties": [status.to_json() for status in statuses],
        }
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    from hostpms_pipeline.cli.status_table import render

    render(statuses, now)


@click.command()
@click.option(
    "--property-id", required=True, callback=_check_property_id, help="The HostPMS property."
)
@click.option(
    "--purge",
    is_flag=True,
    help="Also erase all of the property's data (PostgreSQL, Parquet, raw store), audited.",
)
@click.option("--yes", is_flag=True, help="Do not ask before purging.")
def disconnect(property_id: str, purge: bool, yes: bool) -> None:
    """Disconnect a property: unsubscribe its webhooks, delete its stored secrets, stop
    syncing it; with --purge, erase its data everywhere. Safe to run again."""
    from dagster import DagsterInstance

    from hostpms_pipeline.hostpms.secret_store import open_secret_store
    from hostpms_pipeline.operations.connection import NotConnected, disconnect_property
    from hostpms_pipeline.operations.registry import connect_factory

    settings = get_settings()
    _dagster_home()
    if purge and not yes:
        click.confirm(f"Erase every record of {property_id} from every store?", abort=True)
    connect = connect_factory(settings)
    try:
        report = disconnect_property(
            property_id=property_id,
            settings=settings,
            connect=connect,
            secrets=open_secret_store(settings),
            client_for=_client_factory(settings),
            instance=DagsterInstance.get(),
        )
    except NotConnected as error:
        raise click.UsageError(str(error)) from None
    if report.unsubscribed:
        click.echo(f"{property_id}: webhooks unsubscribed")
    elif report.unsubscribe_error:
        click.echo(
            f"{property_id}: could not unsubscribe ({report.unsubscribe_error}); "
            "the receiver refuses its webhooks anyway",
            err=True,
        )
    click.echo(f"{property_id}: {len(report.secrets_deleted)} stored secret(s) deleted")
    click.echo(
        f"{property_id}: disconnected; no longer synced"
        + (" (it already was)" if report.already_disconnected else "")
    )
    if property_id in settings.property_ids:
        click.echo(
            f"{property_id}: still listed in HOSTPMS_PROPERTY_IDS; remove it there too "
            "(until then the disconnection keeps it out)"
        )
    if purge:
        _purge(settings, connect, property_id)


def _purge(settings, connect, property_id: str) -> None:
    from hostpms_pipeline.cli.progress import terminal_progress
    from hostpms_pipeline.gdpr import audit
    from hostpms_pipeline.gdpr.property_purge import purge_property
    from hostpms_pipeline.lake.storage import open_store

    with terminal_progress():
        counts = purge_property(
            connect,
            open_store(settings.resolved_raw_url),
            settings.resolved_processed_url,
            property_id,
            audit.os_actor(),
        )
    click.echo(f"{property_id}: purged and audited")
    for name, value in counts.items():
        click.echo(f"  {name}: {value}")

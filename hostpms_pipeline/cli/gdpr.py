"""``hostpms gdpr``: erase, export, report, retention, hash (docs/gdpr.md).

Output is counts and keyed hashes only: never a name, email, phone, NIF or document number.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson
import psycopg

from hostpms_pipeline.settings import get_settings


def _person_options(command):
    command = click.option("--property-id", help="The guest id's property.")(command)
    command = click.option("--guest-id", help="A HostPMS guest id (with --property-id).")(command)
    command = click.option("--nif", help="A Portuguese or Spanish NIF/NIE.")(command)
    command = click.option("--email", help="The person's email.")(command)
    return command


def _person(email: str | None, nif: str | None, guest_id: str | None, property_id: str | None):
    from hostpms_pipeline.gdpr.erasure import PersonNotGiven, PersonRef
    from hostpms_pipeline.gdpr.keys import current_hasher

    given = [(k, v) for k, v in (("email", email), ("nif", nif), ("guest_id", guest_id)) if v]
    if len(given) != 1:
        raise click.UsageError("name the person by exactly one of --email, --nif or --guest-id")
    ((kind, value),) = given
    try:
        return PersonRef.of(current_hasher(), kind, value, property_id)  # type: ignore[arg-type]
    except PersonNotGiven as error:
        raise click.UsageError(str(error)) from None


@contextmanager
def _connection() -> Iterator[psycopg.Connection]:
    from hostpms_pipeline.warehouse import database

    settings = get_settings()
    url = database.database_url(settings)
    database.migrate(url, settings.db_schema)
    with database.connect(url, settings.db_schema) as conn:
        yield conn


def _connect_factory():
    from hostpms_pipeline.warehouse import database

    settings = get_settings()
    url = database.database_url(settings)
    database.migrate(url, settings.db_schema)
    return lambda: database.connect(url, settings.db_schema)


def _echo_counts(counts: dict) -> None:
    for store, values in sorted(counts.items()):
        if isinstance(values, dict):
            text = ", ".join(f"{name}={value}" for name, value in sorted(values.items()))
        else:
            text = str(values)
        click.echo(f"  {store}: {text}")


@click.group()
def gdpr() -> None:
    """Right to erasure and of access, the audit trail, retention."""


@gdpr.command()
@_person_options
def erase(email, nif, guest_id, property_id) -> None:
    """Erase a person's personal data from PostgreSQL, Parquet and the raw store, and keep it erased."""
    from hostpms_pipeline.cli.progress import terminal_progress
    from hostpms_pipeline.gdpr import audit
    from hostpms_pipeline.gdpr.erasure import erase as run_erasure
    from hostpms_pipeline.gdpr.keys import current_hasher
    from hostpms_pipeline.lake.storage import open_store

    person = _person(email, nif, guest_id, property_id)
    settings = get_settings()
    started = datetime.now(UTC)
    with terminal_progress():
        report = run_erasure(
            _connect_factory(),
            open_store(settings.resolved_raw_url),
            settings.resolved_processed_url,
            current_hasher(),
            person,
            audit.os_actor(),
        )
    seconds = (datetime.now(UTC) - started).total_seconds()
    resumed = f" (resumed from {report.resumed_from})" if report.resumed_from else ""
    click.echo(
        f"erasure {report.request_id} done in {seconds:.1f}s{resumed}; person {person.hash[:12]}"
    )
    _echo_counts(report.counts)


@gdpr.command()
@_person_options
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Where to write it."
)
def export(email, nif, guest_id, property_id, output: Path | None) -> None:
    """Write one JSON document of every piece of personal data held about the person."""
    from hostpms_pipeline.gdpr import audit
    from hostpms_pipeline.gdpr.access import export_person
    from hostpms_pipeline.gdpr.keys import current_hasher

    person = _person(email, nif, guest_id, property_id)
    with _connection() as conn, conn.transaction():
        document = export_person(conn, current_hasher(), person, audit.os_actor())
    path = output or Path(f"gdpr-export-{person.hash[:12]}.json")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    click.echo(f"export of person {person.hash[:12]} written to {path}")
    _echo_counts({"postgres": document["counts"]})


@gdpr.command()
@_person_options
def report(email, nif, guest_id, property_id) -> None:
    """Print the person's audit trail: every erasure, export and suppression match."""
    from hostpms_pipeline.gdpr import audit
    from hostpms_pipeline.gdpr.access import person_trail

    person = _person(email, nif, guest_id, property_id)
    with _connection() as conn, conn.transaction():
        rows = person_trail(conn, person, audit.os_actor())
    click.echo(
        f"audit trail of person {person.hash[:12]}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}"
    )
    for row in rows:
        counts = orjson.dumps(row.counts, option=orjson.OPT_SORT_KEYS).decode()
        click.echo(
            f"{row.at.isoformat()}  {row.action:<17} by {row.actor}  stores={','.join(row.stores)}  {counts}"
        )


@gdpr.command()
@click.option("--days", type=int, help="Retention in days (default: HOSTPMS_RETENTION_DAYS).")
def retention(days: int | None) -> None:
    """Delete raw objects and rejected records older than the retention; print what was deleted."""
    from hostpms_pipeline.gdpr import audit
    from hostpms_pipeline.gdpr.retention import sweep
    from hostpms_pipeline.lake.storage import open_store

    settings = get_settings()
    counts = sweep(
        _connect_factory(),
        open_store(settings.resolved_raw_url),
        timedelta(days=days or settings.retention_days),
        datetime.now(UTC),
        audit.os_actor(),
    )
    click.echo("retention sweep done")
    _echo_counts({"deleted": counts})


@gdpr.command("hash")
@_person_options
def hash_command(email, nif, guest_id, property_id) -> None:
    """Print the person's keyed hash: what the Dagster erasure job's config takes."""
    person = _person(email, nif, guest_id, property_id)
    click.echo(f"{person.kind}_hash: {person.hash}")


if __name__ == "__main__":
    gdpr()
    sys.exit(0)

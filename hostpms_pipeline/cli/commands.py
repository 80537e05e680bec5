"""The ``hostpms`` command: run the simulator, sync properties, run the demo, open the UI."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click

from hostpms_pipeline.settings import get_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _dagster_home() -> Path:
    """The Dagster instance's home: $DAGSTER_HOME, else ``.hostpms/dagster`` with our dagster.yaml."""
    if os.getenv("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = (get_settings().home / "dagster").absolute()
    home.mkdir(parents=True, exist_ok=True)
    config = PROJECT_ROOT / "dagster.yaml"
    if config.exists():
        shutil.copy(config, home / "dagster.yaml")  # the project's file is the source of truth
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@click.group()
def main() -> None:
    """HostPMS → PostgreSQL and Parquet connector."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8400, show_default=True, type=int)
def simulator(host: str, port: int) -> None:
    """Run the HostPMS simulator (the contract's API, with fault injection) in the foreground."""
    from hostpms_pipeline.simulator.config import SimulatorConfig
    from hostpms_pipeline.simulator.server import serve

    config = SimulatorConfig.from_settings(get_settings())
    click.echo(f"HostPMS simulator on http://{host}:{port}/v3 for {', '.join(config.property_ids)}")
    serve(config, host=host, port=port)


@main.command("serve-webhooks")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8500, show_default=True, type=int)
@click.option("--workers", type=int, help="Worker processes (default: $WEB_CONCURRENCY, else 1).")
def serve_webhooks(host: str, port: int, workers: int | None) -> None:
    """Receive HostPMS webhooks at POST /webhooks/hostpms/{property_id}/{event}."""
    from hostpms_pipeline.webhooks.server import serve

    serve(host, port, workers)


@main.command()
@click.option(
    "--property", "property_ids", multiple=True, help="Only these properties (repeatable)."
)
def sync(property_ids: tuple[str, ...]) -> None:
    """Poll every configured property and run the pipeline in-process. Exits 1 if any failed."""
    from hostpms_pipeline.cli.runner import sync_properties

    _dagster_home()
    outcomes = sync_properties(property_ids or get_settings().property_ids, echo=click.echo)
    failed = [outcome.property_id for outcome in outcomes if not outcome.success]
    if failed:
        click.echo(f"sync failed for: {', '.join(failed)}", err=True)
        sys.exit(1)


@main.command()
@click.argument("property_id")
def resync(property_id: str) -> None:
    """Re-read one property's whole HostPMS history and reload it (dedup absorbs the repeats)."""
    from hostpms_pipeline.cli.runner import sync_properties

    _dagster_home()
    (outcome,) = sync_properties([property_id], echo=click.echo, full_resync=True)
    if not outcome.success:
        click.echo(f"resync failed for: {property_id}", err=True)
        sys.exit(1)


@main.command()
def demo() -> None:
    """Start PostgreSQL and the simulator, sync three properties, print a summary."""
    from hostpms_pipeline.cli.runner import print_summary, sync_properties

    started = time.monotonic()
    # A few odd reservations, so the demo shows rejects and unknown values being kept.
    os.environ.setdefault("HOSTPMS_SIMULATOR_ANOMALY_RATE", "0.03")
    get_settings.cache_clear()
    _dagster_home()
    settings = get_settings()
    click.echo("Starting the embedded PostgreSQL and the HostPMS simulator...")
    outcomes = sync_properties(settings.property_ids, echo=click.echo)
    print_summary(echo=click.echo)
    click.echo(f"\nDone in {time.monotonic() - started:.1f}s.")
    click.echo(
        "Open the Dagster UI with `make dev` (or `.venv/bin/hostpms ui`), then http://127.0.0.1:3000"
    )
    if not all(outcome.success for outcome in outcomes):
        sys.exit(1)


@main.command("stop-postgres")
def stop_postgres() -> None:
    """Stop the embedded PostgreSQL server (it keeps running between commands)."""
    from hostpms_pipeline.warehouse.database import stop_embedded_server

    stopped = stop_embedded_server(get_settings().postgres_data_dir)
    click.echo("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@main.command()
@click.option("--port", default=3000, show_default=True, type=int)
def ui(port: int) -> None:
    """Open the Dagster UI (dagster dev) on this project, with the instance `hostpms sync` uses."""
    _dagster_home()
    dagster = str(Path(sys.executable).parent / "dagster")
    os.execv(dagster, [dagster, "dev", "-w", str(PROJECT_ROOT / "workspace.yaml"), "-p", str(port)])


def _add_gdpr() -> None:
    from hostpms_pipeline.cli.gdpr import gdpr

    main.add_command(gdpr)


_add_gdpr()

if __name__ == "__main__":
    main()

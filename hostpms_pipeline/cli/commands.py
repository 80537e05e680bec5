"""The ``hostpms`` command: run the simulator, sync properties, run the demo, open the UI."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

import click

from hostpms_pipeline import QUIET_ENV, VERBOSE_ENV
from hostpms_pipeline import property_ids as property_id_rule
from hostpms_pipeline.settings import get_settings

# Exit codes: 1 a property failed, 2 a configuration error (as click's usage errors),
# 128 + N stopped by signal N (130 SIGINT, 143 SIGTERM).
EXIT_FAILED = 1
EXIT_CONFIGURATION = 2

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# The local Dagster instance's settings, copied into DAGSTER_HOME (see the file's header).
INSTANCE_CONFIG = PROJECT_ROOT / "instance" / "dagster.yaml"


def _dagster_home() -> Path:
    """The Dagster instance's home: $DAGSTER_HOME, else ``.hostpms/dagster`` with our dagster.yaml."""
    if os.getenv("DAGSTER_HOME"):
        return Path(os.environ["DAGSTER_HOME"])
    home = (get_settings().home / "dagster").absolute()
    home.mkdir(parents=True, exist_ok=True)
    if INSTANCE_CONFIG.exists():  # the project's file is the source of truth
        shutil.copy(INSTANCE_CONFIG, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


class HostPMSGroup(click.Group):
    """Any error escaping a command ends in one line naming its cause and the setting to
    check; the traceback only with ``--verbose``."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            from hostpms_pipeline.cli import signals

            click.echo(f"hostpms: interrupted by {signals.name()}", err=True)
            sys.exit(signals.exit_code() if signals.received() else 130)
        except Exception as error:
            from hostpms_pipeline import errors
            from hostpms_pipeline.cli.failures import exception_line

            if _verbose():
                traceback.print_exc()
            click.echo(f"hostpms: {exception_line(error)}", err=True)
            transient = errors.classify(error).transient
            sys.exit(EXIT_FAILED if transient else EXIT_CONFIGURATION)


def _verbose() -> bool:
    return os.getenv(VERBOSE_ENV, "").lower() in ("1", "true", "yes")


def say(message: str) -> None:
    """A progress line: shown unless ``--quiet`` (errors and failures always are)."""
    if os.getenv(QUIET_ENV, "").lower() not in ("1", "true", "yes"):
        click.echo(message)


def _check_property_ids(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...] | str
) -> tuple[str, ...] | str:
    """``--property`` and PROPERTY_ID follow the rule settings and the receiver apply."""
    for property_id in (value,) if isinstance(value, str) else value:
        if not property_id_rule.is_valid(property_id):
            raise click.BadParameter(
                f"{property_id[:80]!r} is not a property id ({property_id_rule.RULE})"
            )
    return value


@click.group(cls=HostPMSGroup)
@click.version_option(package_name="hostpms_pipeline", prog_name="hostpms")
@click.option(
    "--verbose", "-v", is_flag=True, help="Show full tracebacks and Dagster's step-by-step log."
)
@click.option(
    "--quiet", "-q", is_flag=True, help="Print only warnings, errors and failures (for cron)."
)
def main(verbose: bool, quiet: bool) -> None:
    """HostPMS → PostgreSQL and Parquet connector.

    Settings are HOSTPMS_* environment variables (docs/configuration.md); with none set,
    everything runs locally: the HostPMS simulator, folders under .hostpms/ and a private
    PostgreSQL (`hostpms db url`).
    """
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet cannot be used together")
    if verbose:
        os.environ[VERBOSE_ENV] = "1"  # read by the run's console logger, in-process
    if quiet:
        os.environ[QUIET_ENV] = "1"  # read by say() and the run's console logger


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
    from hostpms_pipeline.cli import signals
    from hostpms_pipeline.webhooks.server import serve

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to the
    # handlers it found: ours, so the exit code says the receiver was stopped (128 + N).
    with _stoppable():
        serve(host, port, workers)
    if signals.received():
        click.echo(f"hostpms serve-webhooks: stopped by {signals.name()}", err=True)
        sys.exit(signals.exit_code())


@main.command()
@click.option(
    "--property",
    "property_ids",
    multiple=True,
    callback=_check_property_ids,
    help="Only these properties (repeatable).",
)
@click.option(
    "--timings",
    is_flag=True,
    help="At the end, print the seconds spent per stage as one JSON line on stderr.",
)
def sync(property_ids: tuple[str, ...], timings: bool) -> None:
    """Poll every configured and connected property and load what changed into PostgreSQL and
    Parquet. Exits 1 if any failed, 2 on a configuration error, 128 + N when stopped by signal N."""
    from hostpms_pipeline.cli.progress import terminal_progress
    from hostpms_pipeline.cli.runner import sync_properties
    from hostpms_pipeline.operations.registry import active_properties
    from hostpms_pipeline.sync.stages import StageClock

    clock = StageClock()
    clock.add("startup", _seconds_since_start())
    targets = property_ids or active_properties(get_settings())
    with _stoppable(), terminal_progress():
        outcomes = sync_properties(targets, echo=say, clock=clock)
    if timings:
        clock.add("total", _seconds_since_start())
        click.echo(f"timings {json.dumps(clock.rounded())}", err=True)
    _exit_for(outcomes, "sync")


def _seconds_since_start() -> float:
    """Since the process started, the interpreter's own start included."""
    try:  # Linux: psutil's create_time adds a boot time /proc gives in whole seconds only
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: ticks after boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, AttributeError):
        import psutil

        return time.time() - psutil.Process().create_time()


@main.command()
@click.argument("property_id", callback=_check_property_ids)
def resync(property_id: str) -> None:
    """Re-read one property's whole HostPMS history and reload it (dedup absorbs the repeats)."""
    from hostpms_pipeline.cli.progress import terminal_progress
    from hostpms_pipeline.cli.runner import sync_properties

    get_settings()
    with _stoppable(), terminal_progress():
        outcomes = sync_properties([property_id], echo=say, full_resync=True)
    _exit_for(outcomes, "resync")


@main.command()
@click.argument("property_id", callback=_check_property_ids)
def refetch(property_id: str) -> None:
    """Fetch again the window of every raw file of PROPERTY_ID set aside as damaged, then load it."""
    from hostpms_pipeline.cli.refetch import refetch as refetch_windows
    from hostpms_pipeline.cli.runner import sync_properties

    get_settings()
    with _stoppable():
        complete = refetch_windows(property_id, echo=say)
        outcomes = sync_properties([property_id], echo=say)
    _exit_for(outcomes, "refetch")
    if not complete:
        sys.exit(EXIT_FAILED)


class _stoppable:
    """SIGTERM/SIGINT handlers for the duration of a sync (see ``cli/signals.py``)."""

    def __enter__(self) -> None:
        from hostpms_pipeline.cli import signals

        self._uninstall = signals.install()

    def __exit__(self, *exc_info: object) -> None:
        self._uninstall()


def _exit_for(outcomes, command: str) -> None:
    from hostpms_pipeline.cli import signals

    if signals.received():
        click.echo(f"hostpms {command}: interrupted by {signals.name()}", err=True)
        sys.exit(signals.exit_code())
    failed = [outcome for outcome in outcomes if not outcome.success]
    if failed:
        click.echo(
            f"{command} failed for: {', '.join(outcome.property_id for outcome in failed)}",
            err=True,
        )
        sys.exit(EXIT_FAILED)


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
    say("Starting the embedded PostgreSQL and the HostPMS simulator...")
    outcomes = sync_properties(settings.property_ids, echo=say)
    print_summary(echo=say)
    say(f"\nDone in {time.monotonic() - started:.1f}s.")
    say(
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
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
def ui(host: str, port: int) -> None:
    """Open the Dagster UI and daemon (`dg dev`) on this project, with the instance `hostpms
    sync` uses."""
    os.execve(*ui_command(host, port))


def ui_command(host: str, port: int) -> tuple[str, list[str], dict[str, str]]:
    """``dg dev`` in the project root, where ``[tool.dg]`` in pyproject.toml names the code
    location; the instance is ``_dagster_home()``'s, which holds the project's settings."""
    _dagster_home()
    dg = str(Path(sys.executable).parent / "dg")
    # The environment dg runs the code location with is this one; saying so keeps dg from
    # warning that the project's .venv is not "activated". No components here: no YAML to check.
    environment = {**os.environ, "VIRTUAL_ENV": sys.prefix}
    arguments = [dg, "dev", "--target-path", str(PROJECT_ROOT), "--no-check-yaml"]
    return dg, [*arguments, "--host", host, "--port", str(port)], environment


def _add_gdpr() -> None:
    from hostpms_pipeline.cli.db import db
    from hostpms_pipeline.cli.gdpr import gdpr

    main.add_command(gdpr)
    main.add_command(db)


def _add_operator_commands() -> None:
    from hostpms_pipeline.cli.operator import connect, disconnect, status

    for command in (connect, status, disconnect):
        main.add_command(command)


_add_gdpr()
_add_operator_commands()

if __name__ == "__main__":
    main()

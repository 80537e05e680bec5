"""What an operator reaches for first: the version, quiet runs for cron, the database by hand,
the UI's command."""

import importlib.metadata
import os
import subprocess

import psycopg

from hostpms_pipeline.cli.commands import INSTANCE_CONFIG, PROJECT_ROOT, ui_command
from hostpms_pipeline.settings import get_settings
from hostpms_pipeline_tests.fixtures.cli import hostpms_command, run_hostpms
from hostpms_pipeline_tests.fixtures.postgres import stop_and_delete


def test_version_names_the_installed_release(cli_env):
    done, _ = run_hostpms("--version", env=cli_env)
    assert done.returncode == 0
    assert (
        done.stdout.strip() == f"hostpms, version {importlib.metadata.version('hostpms_pipeline')}"
    )


def test_quiet_sync_prints_nothing_when_all_is_well_and_still_loads(cli_env, pg_url, pg_schema):
    env = {**cli_env, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001"}
    done, _ = run_hostpms("--quiet", "sync", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "landed a page" not in done.stderr  # the assets' progress lines are INFO
    with psycopg.connect(pg_url) as conn:
        count = conn.execute(f'SELECT count(*) FROM "{pg_schema}".bookings').fetchone()[0]
    assert count > 0


def test_quiet_still_reports_a_failure(cli_env):
    env = {**cli_env, "HOSTPMS_PROPERTY_IDS": "PT-XXX-404"}  # HostPMS knows no such property
    done, _ = run_hostpms("-q", "sync", env=env, timeout=300)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "PT-XXX-404" in done.stderr


def test_verbose_and_quiet_together_are_refused(cli_env):
    done, _ = run_hostpms("--verbose", "--quiet", "sync", env=cli_env)
    assert done.returncode == 2
    assert "cannot be used together" in done.stderr


def test_db_url_reaches_the_connectors_tables(cli_env, pg_conn):
    pg_conn.execute(
        "INSERT INTO sync_checkpoints (property_id, collection) VALUES ('P-1', 'rooms')"
    )
    pg_conn.commit()
    done, _ = run_hostpms("db", "url", env=cli_env)
    assert done.returncode == 0, done.stderr
    with psycopg.connect(done.stdout.strip()) as conn:  # the schema is in the URL
        assert conn.execute("SELECT property_id FROM sync_checkpoints").fetchall() == [("P-1",)]


def test_db_psql_runs_psql_on_the_connectors_schema(cli_env, pg_schema):
    done, _ = run_hostpms("db", "psql", "-At", "-c", "SHOW search_path", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == pg_schema


def test_the_embedded_database_url_starts_the_server_and_points_at_it(tmp_path):
    unset = ("HOSTPMS_DATABASE_URL", "HOSTPMS_DB_SCHEMA")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["HOSTPMS_HOME"] = str(tmp_path / "home")
    try:
        done = subprocess.run(
            hostpms_command("db", "url"), env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "home" / "postgres" / "postmaster.pid").exists()  # its data is ours
        with psycopg.connect(done.stdout.strip()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        stop_and_delete(tmp_path / "home" / "postgres")


def test_ui_runs_dg_dev_on_the_project_with_the_instance_sync_uses(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)  # restored after the test
    monkeypatch.setenv("HOSTPMS_HOME", str(tmp_path))
    get_settings.cache_clear()
    try:
        executable, arguments, environment = ui_command("127.0.0.1", 3123)
    finally:
        get_settings.cache_clear()
    assert executable.endswith("/dg") and arguments[:2] == [executable, "dev"]
    assert arguments[arguments.index("--target-path") + 1] == str(PROJECT_ROOT)
    assert arguments[-4:] == ["--host", "127.0.0.1", "--port", "3123"]
    home = tmp_path.absolute() / "dagster"
    assert environment["DAGSTER_HOME"] == str(home)
    assert (home / "dagster.yaml").read_text() == INSTANCE_CONFIG.read_text()
    assert not (PROJECT_ROOT / "dagster.yaml").exists()  # dg dev would warn it goes unused

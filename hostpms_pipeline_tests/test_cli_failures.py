"""``hostpms sync`` that cannot make progress says so in one line, and stops (a subprocess each)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from hostpms_pipeline_tests.fixtures.cli import run_hostpms
from hostpms_pipeline_tests.test_cli import count_bookings

TRACEBACK_MARKERS = ("Traceback", "RetryRequested", "DagsterExecutionStepExecutionError")


def timed(*args: str, env: dict):
    return run_hostpms(*args, env=env)


def assert_one_line_failure(done, *expected: str) -> None:
    output = done.stdout + done.stderr
    for text in expected:
        assert text in output, output
    for marker in TRACEBACK_MARKERS:
        assert marker not in output, output
    assert len(output.splitlines()) < 12, output


def test_wrong_database_url_fails_at_once_naming_host_port_and_setting(cli_env):
    env = {
        **cli_env,
        "HOSTPMS_DATABASE_URL": "postgresql://nobody:s3cret-pw@127.0.0.1:1/x",
        "HOSTPMS_PROPERTY_IDS": "PT-LIS-001",
    }
    done, elapsed = timed("sync", env=env)
    assert done.returncode == 1
    assert elapsed < 30
    assert_one_line_failure(
        done,
        "PT-LIS-001: FAILED: PostgreSQL at 127.0.0.1:1 refused the connection; "
        "check HOSTPMS_DATABASE_URL",
    )
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_unreachable_api_fails_at_once_naming_the_setting(cli_env):
    env = {
        **cli_env,
        "HOSTPMS_API_BASE_URL": "http://127.0.0.1:9/v3",
        "HOSTPMS_PROPERTY_IDS": "PT-LIS-001",
    }
    done, elapsed = timed("sync", env=env)
    assert done.returncode == 1
    assert elapsed < 30
    assert_one_line_failure(
        done, "the HostPMS API at 127.0.0.1:9 refused the connection; check HOSTPMS_API_BASE_URL"
    )


def test_api_url_without_the_token_endpoint_fails_at_once_naming_the_setting(cli_env):
    """A base URL missing its /v3 reaches a server that answers 404: not worth retrying."""
    base_url = cli_env["HOSTPMS_API_BASE_URL"]
    assert base_url.endswith("/v3")
    env = {**cli_env, "HOSTPMS_API_BASE_URL": base_url.removesuffix("/v3")}
    done, elapsed = timed("sync", "--property", "PT-LIS-001", env=env)
    assert done.returncode == 1
    assert elapsed < 30
    line = (
        "has no HostPMS token endpoint at /oauth/token (answered 404); check HOSTPMS_API_BASE_URL"
    )
    assert_one_line_failure(done, line)
    with psycopg.connect(cli_env["HOSTPMS_DATABASE_URL"]) as conn:  # for status and the alert
        schema = sql.Identifier(cli_env["HOSTPMS_DB_SCHEMA"])
        conn.execute(sql.SQL("SET search_path TO {}").format(schema))
        [(succeeded, problem)] = conn.execute("SELECT succeeded, problem FROM sync_reports")
    assert not succeeded and line in problem


def test_setting_out_of_range_is_one_line_and_exit_2(cli_env):
    done, _ = timed("sync", env={**cli_env, "HOSTPMS_PAGE_LIMIT": "9999"})
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == "hostpms: HOSTPMS_PAGE_LIMIT: Input should be less than or equal to 500"
    )


def test_verbose_shows_the_traceback(cli_env):
    done, _ = timed("--verbose", "sync", env={**cli_env, "HOSTPMS_PAGE_LIMIT": "9999"})
    assert done.returncode == 2
    assert "Traceback" in done.stderr and "HOSTPMS_PAGE_LIMIT" in done.stderr


def test_unwritable_raw_store_retries_within_the_budget_then_ends_naming_it(
    cli_env,
    tmp_path,
    pg_url,
    pg_schema,
):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "hostpms").write_text("a file where the store needs a folder")  # every write fails
    env = {
        **cli_env,
        "HOSTPMS_RAW_URL": str(raw),
        "HOSTPMS_PROPERTY_IDS": "PT-LIS-001,ES-MAD-001",
        "HOSTPMS_MAX_RETRY_WAIT_SECONDS": "3",
    }
    done, elapsed = timed("sync", env=env)
    assert done.returncode == 1
    assert elapsed < 30
    output = done.stdout + done.stderr
    # The wait is announced: what failed, which property, when the next try comes.
    # (Which call meets the file first, a listing or a write, decides the errno.)
    cause = "File exists" if "(File exists)" in output else "Not a directory"
    assert f"PT-LIS-001: the raw store at {raw} cannot be used ({cause})" in output
    assert "retry 1 of 1 at " in output and "(in 3 s)" in output
    assert_one_line_failure(
        done,
        f"PT-LIS-001: FAILED: the raw store at {raw} cannot be used ({cause}); check "
        "HOSTPMS_RAW_URL",
        "HOSTPMS_MAX_RETRY_WAIT_SECONDS bounds the wait",
    )
    # The budget is the whole sync's: the second property does not wait again.
    assert output.count("retry 1 of") == 1
    assert "ES-MAD-001: FAILED: the raw store at" in output
    assert count_bookings(pg_url, pg_schema) == {}

"""The test cluster's teardown: stop, wait for the postmaster, then delete (never a race)."""

from __future__ import annotations

import psutil
import psycopg

from hostpms_pipeline.warehouse import database
from hostpms_pipeline_tests.fixtures.postgres import _postmaster, stop_and_delete


def test_stop_and_delete_waits_for_the_server_and_removes_its_folder(tmp_path):
    data_dir = tmp_path / "data"
    server = database.embedded_server(data_dir, cleanup_mode=None)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        # Work in flight at shutdown: a server busy writing is what raced the old cleanup.
        conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g")
        postmaster = _postmaster(data_dir)
        assert postmaster is not None and postmaster.is_running()
    stop_and_delete(data_dir)
    assert not data_dir.exists()
    assert not psutil.pid_exists(postmaster.pid) or postmaster.status() == psutil.STATUS_ZOMBIE


def test_stop_and_delete_tolerates_a_server_already_stopped(tmp_path):
    data_dir = tmp_path / "data"
    database.embedded_server(data_dir, cleanup_mode=None)
    database.stop_embedded_server(data_dir)
    stop_and_delete(data_dir)
    assert not data_dir.exists()

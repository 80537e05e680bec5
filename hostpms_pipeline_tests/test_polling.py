"""The HostPMS client and the raw landing, against the simulator over loopback HTTP."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import orjson
import pytest

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import Credentials, HostPMSClient, InvalidCredentials
from hostpms_pipeline.ingest.polling import sync_incremental
from hostpms_pipeline.lake.storage import LocalObjectStore, open_store
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET
from hostpms_pipeline.simulator import HostPMSSimulator, run_in_background
from hostpms_pipeline.warehouse import checkpoints, database, ledger
from hostpms_pipeline_tests.fixtures.s3 import s3_client

PROPERTY = "PT-LIS-001"
CREDENTIALS = Credentials(SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET)


def make_client(base_url: str, page_limit: int = 100) -> HostPMSClient:
    return HostPMSClient(
        base_url, CREDENTIALS, timeout=5, page_limit=page_limit, max_backoff_seconds=0.2
    )


def visible_ids(running) -> list[str]:
    """Reservation ids HostPMS serves now (some of the seeded ones lie in the future)."""
    simulator = running.simulator
    return simulator.dataset.timeline(PROPERTY, "reservations").latest_keys(simulator.clock.now())


def all_records(client: HostPMSClient, **filters) -> list[dict]:
    return [
        r for page in client.iter_pages(PROPERTY, "reservations", **filters) for r in page.records
    ]


@pytest.fixture
def connect(pg_url, pg_schema):
    @contextmanager
    def _connect():
        with database.connect(pg_url, pg_schema) as conn:
            yield conn

    return _connect


def test_many_pages_arrive_in_contract_order_with_nothing_missing(running_simulator):
    with make_client(running_simulator.base_url, page_limit=7) as client:
        pages = list(client.iter_pages(PROPERTY, "reservations"))
    records = [record for page in pages for record in page.records]
    expected = visible_ids(running_simulator)
    assert len(pages) == -(-len(expected) // 7)  # ceil: every page full but the last
    assert sorted(r["reservation_id"] for r in records) == sorted(expected)
    order = [(r["updated_at"], r["reservation_id"]) for r in records]
    assert order == sorted(order)


def test_wrong_credentials_fail_without_retrying(running_simulator):
    client = HostPMSClient(running_simulator.base_url, Credentials("nobody", "wrong"), timeout=5)
    with client, pytest.raises(InvalidCredentials):
        all_records(client)
    assert running_simulator.simulator.tokens.issued == 0


def test_revoked_token_is_replaced_once_and_the_request_retried(running_simulator):
    with make_client(running_simulator.base_url, page_limit=50) as client:
        first = client.fetch_page(PROPERTY, "reservations", {"limit": 50})
        running_simulator.simulator.revoke_tokens()
        second = client.fetch_page(PROPERTY, "reservations", {"limit": 50})
    assert client.auth.tokens_fetched == 2
    assert client.auth.tokens_refused == 1
    assert second.records == first.records


def test_token_is_refreshed_before_it_expires(simulator_config):
    short_lived = replace(simulator_config, token_lifetime_seconds=1.0)
    with (
        run_in_background(HostPMSSimulator(short_lived)) as running,
        make_client(running.base_url) as client,
    ):
        client.fetch_page(PROPERTY, "reservations", {"limit": 1})
        time.sleep(1.0)
        client.fetch_page(PROPERTY, "reservations", {"limit": 1})
        assert client.auth.tokens_fetched == 2
        assert client.auth.tokens_refused == 0  # renewed before HostPMS had to refuse it


def test_updated_since_and_before_select_a_window(running_simulator):
    with make_client(running_simulator.base_url, page_limit=500) as client:
        everything = all_records(client)
        middle = contract.parse_timestamp(everything[len(everything) // 2]["updated_at"])
        later = all_records(client, updated_since=middle)
        earlier = all_records(client, updated_before=middle)
    assert len(later) + len(earlier) == len(everything)
    assert all(contract.parse_timestamp(r["updated_at"]) >= middle for r in later)


def test_landed_pages_follow_the_raw_layout_and_hold_the_records(
    running_simulator, tmp_path, connect
):
    store = LocalObjectStore(tmp_path / "raw")
    with make_client(running_simulator.base_url, page_limit=40) as client:
        result = sync_incremental(client, store, connect, PROPERTY)
    visible = len(visible_ids(running_simulator))
    keys = [info.key for info in store.list(f"hostpms/{PROPERTY}/polling/")]
    assert len(keys) == result.pages == -(-visible // 40)
    landed = [orjson.loads(store.get(key)) for key in keys]
    assert all(
        page["property_id"] == PROPERTY and page["collection"] == "reservations" for page in landed
    )
    assert sum(len(page["data"]) for page in landed) == result.records == visible
    with connect() as conn:
        assert sorted(ledger.pending_files(conn, PROPERTY)) == sorted(result.locations)
        checkpoint = checkpoints.get_checkpoint(conn, PROPERTY, "reservations")
    assert checkpoint.cursor is None
    assert checkpoint.updated_since == result.watermark


def test_a_crashed_sync_resumes_from_its_checkpoint(running_simulator, tmp_path, connect):
    store = LocalObjectStore(tmp_path / "raw")

    class Crash(Exception):
        pass

    def crash_after_two_pages(page, seen=[]):  # noqa: B006 - counts calls across this test only
        seen.append(page)
        if len(seen) == 2:
            raise Crash

    with make_client(running_simulator.base_url, page_limit=20) as client:
        with pytest.raises(Crash):
            sync_incremental(
                client, store, connect, PROPERTY, progress=crash_after_two_pages, commit_pages=1
            )
        with connect() as conn:
            assert checkpoints.get_checkpoint(conn, PROPERTY, "reservations").cursor is not None
        resumed = sync_incremental(client, store, connect, PROPERTY)
    # The first page was checkpointed; the second landed but its checkpoint never moved,
    # so the rerun starts at page two.
    visible = len(visible_ids(running_simulator))
    assert resumed.pages == -(-visible // 20) - 1
    landed_ids = {
        record["reservation_id"]
        for info in store.list("hostpms/")
        for record in orjson.loads(store.get(info.key))["data"]
    }
    assert len(landed_ids) == visible


def test_an_incremental_sync_fetches_only_what_changed(running_simulator, tmp_path, connect):
    store = LocalObjectStore(tmp_path / "raw")
    simulator = running_simulator.simulator
    with make_client(running_simulator.base_url) as client:
        sync_incremental(client, store, connect, PROPERTY, overlap=timedelta(0))
        # An hour passes; three reservations change at HostPMS.
        simulator.advance_clock(3600)
        ids = simulator.dataset.timeline(PROPERTY, "reservations").latest_keys(
            simulator.clock.now()
        )[:3]
        simulator.change_records(PROPERTY, "reservations", ids)
        second = sync_incremental(client, store, connect, PROPERTY, overlap=timedelta(0))
    fetched = {
        record["reservation_id"]
        for location in second.locations
        for record in orjson.loads(store.get_location(location))["data"]
    }
    assert set(ids) <= fetched
    assert len(fetched) < len(visible_ids(running_simulator)) / 2


def test_pages_land_on_s3_with_server_side_encryption(
    running_simulator, s3_bucket_url, moto_endpoint_url, connect
):
    store = open_store(s3_bucket_url)
    with make_client(running_simulator.base_url, page_limit=100) as client:
        result = sync_incremental(client, store, connect, PROPERTY)
    bucket = s3_bucket_url.removeprefix("s3://")
    objects = s3_client(moto_endpoint_url).list_objects_v2(
        Bucket=bucket, Prefix=f"hostpms/{PROPERTY}/polling/"
    )
    keys = [item["Key"] for item in objects["Contents"]]
    assert len(keys) == result.pages == 2
    head = s3_client(moto_endpoint_url).head_object(Bucket=bucket, Key=keys[0])
    assert head["ServerSideEncryption"] in {"AES256", "aws:kms"}
    landed = sum(len(orjson.loads(store.get(k))["data"]) for k in keys)
    assert landed == len(visible_ids(running_simulator))

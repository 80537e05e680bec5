"""The shared request schedule: real PostgreSQL, several processes, the simulator over loopback."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

import pytest

from hostpms_pipeline.hostpms.client import Credentials, HostPMSClient
from hostpms_pipeline.hostpms.rate_limiter import (
    InProcessRateLimiter,
    PostgresRateLimiter,
    RateLimit,
)
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET
from hostpms_pipeline.simulator import HostPMSSimulator, run_in_background
from hostpms_pipeline.warehouse import database

CREDENTIALS = Credentials(SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET)
LIMIT = RateLimit(requests=100, window_seconds=60.0)
ONE_MICROSECOND = timedelta(microseconds=1)  # timestamptz resolution


@pytest.fixture
def connect(pg_url, pg_schema):
    return partial(database.connect, pg_url, pg_schema)


def claim_slots(url: str, schema: str, count: int) -> list[datetime]:
    """Run in another process: claim ``count`` slots of one (client, endpoint) without waiting."""
    limiter = PostgresRateLimiter(partial(database.connect, url, schema), LIMIT)
    return [limiter.claim("client", "reservations").at for _ in range(count)]


def assert_evenly_spaced(slots: list[datetime], spacing: float) -> None:
    ordered = sorted(slots)
    gaps = [later - earlier for earlier, later in zip(ordered, ordered[1:], strict=False)]
    assert min(gaps) >= timedelta(seconds=spacing) - ONE_MICROSECOND


def test_processes_sharing_the_database_get_distinct_evenly_spaced_slots(pg_url, pg_schema):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(3, mp_context=context) as pool:
        batches = list(pool.map(claim_slots, [pg_url] * 3, [pg_schema] * 3, [20] * 3))
    slots = [slot for batch in batches for slot in batch]
    assert len(set(slots)) == 60
    assert_evenly_spaced(slots, LIMIT.spacing_seconds)
    # 60 requests at 100/min with the margin span more than 60 × 0.6 s: never a burst.
    assert (
        max(slots) - min(slots) >= timedelta(seconds=59 * LIMIT.spacing_seconds) - ONE_MICROSECOND
    )


def test_endpoints_and_clients_have_their_own_schedules(connect):
    limiter = PostgresRateLimiter(connect, LIMIT)
    first = limiter.claim("client", "reservations")
    assert limiter.claim("client", "guests").wait_seconds < LIMIT.spacing_seconds / 2
    assert limiter.claim("other-client", "reservations").wait_seconds < LIMIT.spacing_seconds / 2
    assert limiter.claim("client", "reservations").at - first.at == timedelta(
        seconds=LIMIT.spacing_seconds
    )


def test_an_idle_schedule_does_not_save_up_a_burst(connect):
    limiter = PostgresRateLimiter(connect, LIMIT)
    limiter.claim("client", "reservations")
    with connect() as conn:  # an hour without requests
        conn.execute("UPDATE rate_limit_slots SET next_allowed_at = now() - interval '1 hour'")
    now_slot = limiter.claim("client", "reservations")
    following = limiter.claim("client", "reservations")
    assert now_slot.wait_seconds == 0
    assert following.at - now_slot.at == timedelta(seconds=LIMIT.spacing_seconds)


def test_acquire_sleeps_until_its_slot(connect):
    slept: list[float] = []
    limiter = PostgresRateLimiter(connect, LIMIT, sleep=slept.append)
    for _ in range(3):
        limiter.acquire("client", "reservations")
    # The fake sleep returns at once, so each wait is one more spacing than the last.
    assert len(slept) == 2
    assert slept[1] - slept[0] == pytest.approx(LIMIT.spacing_seconds, abs=0.05)


def test_in_process_limiter_spaces_requests_the_same_way():
    slept: list[float] = []
    limiter = InProcessRateLimiter(LIMIT, sleep=slept.append)
    for _ in range(3):
        limiter.acquire("client", "reservations")
    limiter.acquire("client", "rooms")  # another endpoint: no wait
    assert len(slept) == 2
    assert slept[1] - slept[0] == pytest.approx(LIMIT.spacing_seconds, abs=0.05)


class CountingLimiter:
    """Counts the requests the client asks to send (and does not pace them)."""

    def __init__(self) -> None:
        self.acquired: list[tuple[str, str]] = []

    def acquire(self, client_id: str, endpoint: str) -> None:
        self.acquired.append((client_id, endpoint))


def test_every_request_sent_is_paced_the_retry_after_a_401_included(running_simulator):
    limiter = CountingLimiter()
    with HostPMSClient(running_simulator.base_url, CREDENTIALS, limiter=limiter) as client:
        client.fetch_page("PT-LIS-001", "reservations", {"limit": 10})
        running_simulator.simulator.revoke_tokens()
        client.fetch_page("PT-LIS-001", "guests", {"limit": 10})
    # The token requests are not paced; the request refused with 401 and its retry are.
    assert (
        limiter.acquired
        == [(SIMULATOR_CLIENT_ID, "reservations")] + [(SIMULATOR_CLIENT_ID, "guests")] * 2
    )


def refused_requests(simulator: HostPMSSimulator) -> int:
    return sum(row["refused"] for row in simulator.state()["request_counts"])


def test_concurrent_syncs_sharing_the_schedule_never_hit_the_limit(simulator_config, connect):
    tight = replace(simulator_config, rate_limit=10, rate_window_seconds=1.0)
    limit = RateLimit(requests=10, window_seconds=1.0, safety_margin=0.25)
    with run_in_background(HostPMSSimulator(tight)) as running:

        def page_through(property_id: str) -> int:
            limiter = PostgresRateLimiter(connect, limit)
            with HostPMSClient(
                running.base_url, CREDENTIALS, page_limit=15, limiter=limiter
            ) as client:
                return sum(
                    len(page.records) for page in client.iter_pages(property_id, "reservations")
                )

        with ThreadPoolExecutor(2) as pool:
            counts = list(pool.map(page_through, ["PT-LIS-001", "ES-MAD-001"]))
        state = running.simulator.state()
    assert all(count > 0 for count in counts)
    served = sum(row["served"] for row in state["request_counts"])
    assert served >= 2 * 8  # enough requests to need more than one window's budget
    assert refused_requests(running.simulator) == 0


def test_without_a_limiter_the_headers_alone_keep_one_client_within_budget(simulator_config):
    tight = replace(simulator_config, rate_limit=4, rate_window_seconds=1.0)
    with run_in_background(HostPMSSimulator(tight)) as running:
        with HostPMSClient(running.base_url, CREDENTIALS, page_limit=20) as client:
            pages = list(client.iter_pages("PT-LIS-001", "reservations"))
        assert len(pages) > 4  # more than one window's budget
        assert refused_requests(running.simulator) == 0

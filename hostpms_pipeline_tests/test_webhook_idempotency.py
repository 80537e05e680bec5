"""The idempotency stores, PostgreSQL and DynamoDB (moto's server over HTTP), under one contract."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.client import BaseClient
from pydantic import SecretStr

from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import database
from hostpms_pipeline.webhooks.idempotency import (
    CLAIM_LEASE,
    RETENTION,
    ClaimState,
    DynamoDBIdempotencyStore,
    EventRef,
    IdempotencyError,
    IdempotencyStore,
    PostgresIdempotencyStore,
    create_dynamodb_table,
    open_idempotency_store,
)
from hostpms_pipeline_tests.fixtures.s3 import TEST_ENV, TEST_REGION

NOW = datetime(2026, 11, 24, 13, 0, tzinfo=UTC)
EVENT = EventRef("PT-LIS-001", "evt_8f14e45fceea167a", "reservation.updated")
LOCATION = "s3://raw/hostpms/PT-LIS-001/webhooks/reservation.updated/x.json"


@pytest.fixture
def aws_environment(moto_endpoint_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS variables pointing at the moto server (as ``s3_bucket_url`` does)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint_url)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return moto_endpoint_url


@pytest.fixture
def dynamodb(aws_environment: str) -> BaseClient:
    return boto3.client("dynamodb", region_name=TEST_REGION)


@pytest.fixture
def dynamodb_table(dynamodb: BaseClient) -> str:
    name = f"webhook-events-{uuid.uuid4().hex[:12]}"
    create_dynamodb_table(name, dynamodb)
    return name


@pytest.fixture
def postgres_store(pg_url: str, pg_schema: str) -> PostgresIdempotencyStore:
    return PostgresIdempotencyStore(lambda: database.connect(pg_url, pg_schema))


@pytest.fixture
def dynamodb_store(dynamodb_table: str) -> DynamoDBIdempotencyStore:
    return DynamoDBIdempotencyStore(dynamodb_table)  # its own client, from the environment


@pytest.fixture(params=["postgres", "dynamodb"])
def store(request: pytest.FixtureRequest) -> IdempotencyStore:
    return request.getfixturevalue(f"{request.param}_store")


# --- the contract both stores keep ------------------------------------------------------------


def test_first_claim_wins_and_a_second_is_in_flight(store: IdempotencyStore) -> None:
    first = store.claim(EVENT, NOW)
    second = store.claim(EVENT, NOW + timedelta(seconds=1))
    assert first.state is ClaimState.CLAIMED and first.token
    assert second.state is ClaimState.IN_FLIGHT and not second.token


def test_landed_event_is_a_duplicate_even_after_the_lease(store: IdempotencyStore) -> None:
    claim = store.claim(EVENT, NOW)
    store.mark_landed(claim, LOCATION, NOW)
    assert store.claim(EVENT, NOW).state is ClaimState.DUPLICATE
    assert store.claim(EVENT, NOW + CLAIM_LEASE * 10).state is ClaimState.DUPLICATE


def test_released_claim_can_be_claimed_again(store: IdempotencyStore) -> None:
    store.release(store.claim(EVENT, NOW))
    assert store.claim(EVENT, NOW).state is ClaimState.CLAIMED


def test_claim_past_its_lease_is_taken_over_and_the_old_one_cannot_release_it(
    store: IdempotencyStore,
) -> None:
    """The receiver died between claiming and marking: a redelivery after the lease lands it."""
    abandoned = store.claim(EVENT, NOW)
    assert (
        store.claim(EVENT, NOW + CLAIM_LEASE - timedelta(seconds=1)).state is ClaimState.IN_FLIGHT
    )
    taken_over = store.claim(EVENT, NOW + CLAIM_LEASE + timedelta(seconds=1))
    assert taken_over.state is ClaimState.CLAIMED
    assert taken_over.token != abandoned.token
    store.release(abandoned)  # a late release of the abandoned claim must not free the new one
    assert store.claim(EVENT, NOW + CLAIM_LEASE * 2).state is ClaimState.IN_FLIGHT


def test_events_are_told_apart_by_property_and_id(store: IdempotencyStore) -> None:
    store.mark_landed(store.claim(EVENT, NOW), LOCATION, NOW)
    other_property = EventRef("PT-POR-002", EVENT.event_id, EVENT.event_type)
    other_event = EventRef(EVENT.property_id, "evt_0000000000000001", EVENT.event_type)
    assert store.claim(other_property, NOW).state is ClaimState.CLAIMED
    assert store.claim(other_event, NOW).state is ClaimState.CLAIMED


def test_concurrent_claims_of_one_event_have_exactly_one_winner(
    postgres_store: PostgresIdempotencyStore,
) -> None:
    """PostgreSQL only: DynamoDB's conditional put is atomic by AWS's guarantee, moto's is not."""
    workers = 8
    start = threading.Barrier(workers)

    def claim(_: int) -> ClaimState:
        start.wait()
        return postgres_store.claim(EVENT, NOW).state

    with ThreadPoolExecutor(workers) as pool:
        states = list(pool.map(claim, range(workers)))
    assert states.count(ClaimState.CLAIMED) == 1
    assert states.count(ClaimState.IN_FLIGHT) == workers - 1


# --- PostgreSQL specifics ---------------------------------------------------------------------


def test_postgres_purges_events_received_more_than_seven_days_ago(
    postgres_store: PostgresIdempotencyStore,
) -> None:
    old = EventRef(EVENT.property_id, "evt_old", EVENT.event_type)
    postgres_store.mark_landed(
        postgres_store.claim(old, NOW - RETENTION - timedelta(hours=1)), LOCATION, NOW
    )
    postgres_store.mark_landed(postgres_store.claim(EVENT, NOW - timedelta(days=6)), LOCATION, NOW)
    assert postgres_store.purge(NOW) == 1
    assert postgres_store.claim(old, NOW).state is ClaimState.CLAIMED
    assert postgres_store.claim(EVENT, NOW).state is ClaimState.DUPLICATE


def test_postgres_unreachable_raises_idempotency_error() -> None:
    store = PostgresIdempotencyStore(
        lambda: database.connect("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2", "public")
    )
    with pytest.raises(IdempotencyError):
        store.claim(EVENT, NOW)


# --- DynamoDB specifics -----------------------------------------------------------------------


def test_dynamodb_items_expire_seven_days_after_receipt(
    dynamodb_store: DynamoDBIdempotencyStore, dynamodb: BaseClient, dynamodb_table: str
) -> None:
    claim = dynamodb_store.claim(EVENT, NOW)
    dynamodb_store.mark_landed(claim, LOCATION, NOW + timedelta(seconds=2))
    item = dynamodb.get_item(
        TableName=dynamodb_table,
        Key={"idempotency_key": {"S": EVENT.idempotency_key}},
        ConsistentRead=True,
    )["Item"]
    assert item["state"] == {"S": "landed"}
    assert item["location"] == {"S": LOCATION}
    assert int(item["expires_at"]["N"]) >= int((NOW + RETENTION).timestamp())
    ttl = dynamodb.describe_time_to_live(TableName=dynamodb_table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires_at")


def test_dynamodb_expired_item_not_yet_deleted_counts_as_absent(
    dynamodb_store: DynamoDBIdempotencyStore,
) -> None:
    """DynamoDB deletes expired items up to two days late: the condition treats them as gone."""
    dynamodb_store.mark_landed(dynamodb_store.claim(EVENT, NOW), LOCATION, NOW)
    later = NOW + RETENTION + timedelta(days=1)
    assert dynamodb_store.claim(EVENT, later).state is ClaimState.CLAIMED


def test_dynamodb_missing_table_raises_idempotency_error(aws_environment: str) -> None:
    with pytest.raises(IdempotencyError, match="ResourceNotFoundException"):
        DynamoDBIdempotencyStore("no-such-table").claim(EVENT, NOW)


# --- selection ----------------------------------------------------------------------------------


@pytest.fixture
def pg_only_settings(pg_url: str, pg_schema: str, tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", database_url=SecretStr(pg_url), db_schema=pg_schema)


def test_table_setting_selects_dynamodb(dynamodb_table: str, pg_only_settings: Settings) -> None:
    store = open_idempotency_store(
        pg_only_settings.model_copy(update={"idempotency_table": dynamodb_table})
    )
    assert isinstance(store, DynamoDBIdempotencyStore)
    assert store.claim(EVENT, NOW).state is ClaimState.CLAIMED


def test_postgres_is_the_default_and_is_migrated(pg_url: str, tmp_path: Path) -> None:
    schema = f"fresh_{uuid.uuid4().hex[:12]}"  # never migrated: opening the store migrates it
    settings = Settings(home=tmp_path / "home", database_url=SecretStr(pg_url), db_schema=schema)
    store = open_idempotency_store(settings)
    assert isinstance(store, PostgresIdempotencyStore)
    assert store.claim(EVENT, NOW).state is ClaimState.CLAIMED
    with database.connect(pg_url, schema) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_events").fetchone() == (1,)
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

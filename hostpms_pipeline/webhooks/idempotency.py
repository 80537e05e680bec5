"""Each HostPMS event lands once: claim, land, mark.

A delivery first **claims** its event's key (a conditional insert: exactly one of
two concurrent deliveries wins), then **lands** the event in the raw store, then
**marks** the key landed. The loser of a race is told the event is in flight (409,
HostPMS retries and then finds it landed); a delivery of a landed event is a
duplicate (200, nothing new). If landing fails, the claim is **released** so the
retry lands it. A claim carries a lease: if the receiver dies between claiming
and marking, a redelivery after the lease takes the claim over and lands the
event again; when the first copy had already landed, that is a second copy, which
the pipeline's dedup absorbs (same state, same version).

Two stores: PostgreSQL (the default, table ``webhook_events``) and DynamoDB (when
``HOSTPMS_IDEMPOTENCY_TABLE`` names a table with partition key ``idempotency_key``
and TTL on ``expires_at``). Keys are kept for 7 days; HostPMS stops retrying
after 24 hours.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import boto3
import psycopg
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from psycopg import sql
from psycopg_pool import ConnectionPool

from hostpms_pipeline.settings import Settings
from hostpms_pipeline.warehouse import database

RETENTION = timedelta(days=7)
# Longer than a landing can take (S3 timeouts are 5 s + 30 s), so a live claim is not taken over.
CLAIM_LEASE = timedelta(seconds=60)
# The sender waits 10 s: fail fast on a dead endpoint.
_DYNAMODB_CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 2})
_CONDITION_FAILED = "ConditionalCheckFailedException"
# Connections the receiver keeps open to PostgreSQL. A delivery holds one for a single
# statement twice (claim, mark), so a few serve a thousand deliveries a second; a
# delivery waits at most POOL_TIMEOUT for one, then answers 503 (the sender waits 10 s).
POOL_MIN_SIZE = 2
POOL_MAX_SIZE = 8
POOL_TIMEOUT = timedelta(seconds=5)

Connect = Callable[[], AbstractContextManager[psycopg.Connection]]


class IdempotencyError(Exception):
    """The idempotency store could not answer; the cause is chained."""


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # this delivery lands the event
    DUPLICATE = "duplicate"  # already landed
    IN_FLIGHT = "in_flight"  # another delivery holds a live claim


@dataclass(frozen=True)
class EventRef:
    property_id: str
    event_id: str
    event_type: str

    @property
    def idempotency_key(self) -> str:
        return f"hostpms:{self.property_id}:{self.event_id}"


@dataclass(frozen=True)
class Claim:
    event: EventRef
    state: ClaimState
    token: str = ""  # identifies this delivery's claim when ``state`` is CLAIMED


class IdempotencyStore(Protocol):
    def claim(self, event: EventRef, now: datetime) -> Claim: ...

    def mark_landed(self, claim: Claim, location: str, now: datetime) -> None: ...

    def release(self, claim: Claim) -> None: ...


# --- PostgreSQL ------------------------------------------------------------------

_PG_CLAIM = """
INSERT INTO webhook_events AS e
    (idempotency_key, property_id, event_type, state, claim_token, claimed_until, received_at)
VALUES (%(key)s, %(property_id)s, %(event_type)s, 'claimed', %(token)s, %(until)s, %(now)s)
ON CONFLICT (idempotency_key) DO UPDATE
    SET claim_token = EXCLUDED.claim_token,
        claimed_until = EXCLUDED.claimed_until,
        received_at = EXCLUDED.received_at
    WHERE e.state = 'claimed' AND e.claimed_until < EXCLUDED.received_at
RETURNING claim_token
"""
_PG_MARK = """
INSERT INTO webhook_events AS e (idempotency_key, property_id, event_type, state, claim_token,
                                 claimed_until, received_at, location, landed_at)
VALUES (%(key)s, %(property_id)s, %(event_type)s, 'landed', %(token)s, %(now)s, %(now)s,
        %(location)s, %(now)s)
ON CONFLICT (idempotency_key) DO UPDATE
    SET state = 'landed', location = EXCLUDED.location, landed_at = EXCLUDED.landed_at
"""
_PG_RELEASE = """
DELETE FROM webhook_events WHERE idempotency_key = %s AND claim_token = %s AND state = 'claimed'
"""


@dataclass
class PostgresIdempotencyStore:
    connect: Connect
    lease: timedelta = CLAIM_LEASE

    def claim(self, event: EventRef, now: datetime) -> Claim:
        token = str(uuid.uuid4())
        parameters = {
            "key": event.idempotency_key,
            "property_id": event.property_id,
            "event_type": event.event_type,
            "token": token,
            "until": now + self.lease,
            "now": now,
        }
        with self._session() as conn:
            if conn.execute(_PG_CLAIM, parameters).fetchone():
                return Claim(event, ClaimState.CLAIMED, token)
            row = conn.execute(
                "SELECT state FROM webhook_events WHERE idempotency_key = %s",
                (event.idempotency_key,),
            ).fetchone()
        # A row gone since the insert was a released claim: its delivery is being retried.
        landed = row is not None and row[0] == "landed"
        return Claim(event, ClaimState.DUPLICATE if landed else ClaimState.IN_FLIGHT)

    def mark_landed(self, claim: Claim, location: str, now: datetime) -> None:
        event = claim.event
        parameters = {
            "key": event.idempotency_key,
            "property_id": event.property_id,
            "event_type": event.event_type,
            "token": claim.token,
            "location": location,
            "now": now,
        }
        with self._session() as conn:
            conn.execute(_PG_MARK, parameters)

    def release(self, claim: Claim) -> None:
        with self._session() as conn:
            conn.execute(_PG_RELEASE, (claim.event.idempotency_key, claim.token))

    def purge(self, now: datetime, retention: timedelta = RETENTION) -> int:
        """Forget events received more than ``retention`` ago; returns how many."""
        with self._session() as conn:
            return conn.execute(
                "DELETE FROM webhook_events WHERE received_at < %s", (now - retention,)
            ).rowcount

    @contextmanager
    def _session(self) -> Iterator[psycopg.Connection]:
        """A connection that commits on leaving; psycopg errors become ``IdempotencyError``."""
        try:
            with self.connect() as conn:
                yield conn
        except psycopg.Error as error:
            raise IdempotencyError(f"PostgreSQL: {type(error).__name__}") from error


# --- DynamoDB --------------------------------------------------------------------

_DYNAMODB_NAMES = {"#state": "state", "#location": "location"}  # reserved words in DynamoDB
_DYNAMODB_CLAIM_CONDITION = (
    "attribute_not_exists(idempotency_key)"
    " OR expires_at < :now"  # TTL deletion lags by up to two days
    " OR (#state = :claimed AND claimed_until < :now)"
)


@dataclass
class DynamoDBIdempotencyStore:
    table_name: str
    client: Any = None
    lease: timedelta = CLAIM_LEASE

    def __post_init__(self) -> None:
        if self.client is None:
            self.client = boto3.client("dynamodb", config=_DYNAMODB_CLIENT_CONFIG)

    def claim(self, event: EventRef, now: datetime) -> Claim:
        token = str(uuid.uuid4())
        item = {
            **_item_identity(event, now),
            "state": {"S": ClaimState.CLAIMED.value},
            "claim_token": {"S": token},
            "claimed_until": _number(now + self.lease),
            "received_at": {"S": now.isoformat()},
        }
        try:
            with _dynamodb_errors():
                self.client.put_item(
                    TableName=self.table_name,
                    Item=item,
                    ConditionExpression=_DYNAMODB_CLAIM_CONDITION,
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={
                        ":now": _number(now),
                        ":claimed": {"S": ClaimState.CLAIMED.value},
                    },
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
        except _ConditionFailed as failed:
            landed = failed.item.get("state", {}).get("S") == "landed"
            return Claim(event, ClaimState.DUPLICATE if landed else ClaimState.IN_FLIGHT)
        return Claim(event, ClaimState.CLAIMED, token)

    def mark_landed(self, claim: Claim, location: str, now: datetime) -> None:
        identity = _item_identity(claim.event, now)
        with _dynamodb_errors():
            self.client.update_item(
                TableName=self.table_name,
                Key={"idempotency_key": identity.pop("idempotency_key")},
                UpdateExpression=(
                    "SET #state = :landed, #location = :location, landed_at = :now,"
                    " property_id = :property_id, event_type = :event_type,"
                    " expires_at = :expires_at"
                ),
                ExpressionAttributeNames=_DYNAMODB_NAMES,
                ExpressionAttributeValues={
                    ":landed": {"S": "landed"},
                    ":location": {"S": location},
                    ":now": {"S": now.isoformat()},
                    ":property_id": identity["property_id"],
                    ":event_type": identity["event_type"],
                    ":expires_at": identity["expires_at"],
                },
            )

    def release(self, claim: Claim) -> None:
        try:
            with _dynamodb_errors():
                self.client.delete_item(
                    TableName=self.table_name,
                    Key={"idempotency_key": {"S": claim.event.idempotency_key}},
                    ConditionExpression="claim_token = :token AND #state = :claimed",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={
                        ":token": {"S": claim.token},
                        ":claimed": {"S": ClaimState.CLAIMED.value},
                    },
                )
        except _ConditionFailed:
            pass  # the claim was taken over or already landed: not ours to delete


def create_dynamodb_table(table_name: str, client: BaseClient | None = None) -> None:
    """The table the store expects (on demand, TTL on ``expires_at``): for tests and setup."""
    client = client or boto3.client("dynamodb", config=_DYNAMODB_CLIENT_CONFIG)
    client.create_table(
        TableName=table_name,
        AttributeDefinitions=[{"AttributeName": "idempotency_key", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "idempotency_key", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table_name)
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )


class _ConditionFailed(Exception):
    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("conditional check failed")
        self.item = item


@contextmanager
def _dynamodb_errors() -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code == _CONDITION_FAILED:
            raise _ConditionFailed(error.response.get("Item", {})) from error
        raise IdempotencyError(f"DynamoDB: {code}") from error
    except BotoCoreError as error:
        raise IdempotencyError(f"DynamoDB: {type(error).__name__}") from error


def _item_identity(event: EventRef, now: datetime) -> dict[str, dict[str, str]]:
    return {
        "idempotency_key": {"S": event.idempotency_key},
        "property_id": {"S": event.property_id},
        "event_type": {"S": event.event_type},
        "expires_at": _number(now + RETENTION),
    }


def _number(moment: datetime) -> dict[str, str]:
    """Epoch seconds as a DynamoDB number (the form TTL attributes need)."""
    return {"N": str(int(moment.timestamp()))}


# --- Selection -------------------------------------------------------------------


def postgres_pool(url: str, schema: str) -> ConnectionPool:
    """Connections opened once and shared by every delivery (opening one costs milliseconds
    of PostgreSQL CPU, more than the claim itself). A connection that broke is dropped
    when it comes back, so a restarted server costs the deliveries in flight a 503.

    Each statement of the store is its own transaction, so the connections autocommit:
    one round trip per statement instead of BEGIN, statement, COMMIT. Commits do not
    wait for the WAL flush: the event's durability is the raw store's fsynced write,
    and a key lost in a PostgreSQL crash only lets a redelivery land a second copy of
    an event, which the pipeline's dedup absorbs, as after a lost mark.
    """

    def configure(conn: psycopg.Connection) -> None:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute("SET synchronous_commit TO off")

    return ConnectionPool(
        url,
        kwargs={"autocommit": True},
        min_size=POOL_MIN_SIZE,
        max_size=POOL_MAX_SIZE,
        timeout=POOL_TIMEOUT.total_seconds(),
        configure=configure,
        name="hostpms-webhook-idempotency",
        open=True,
    )


def open_idempotency_store(settings: Settings) -> IdempotencyStore:
    """DynamoDB when ``HOSTPMS_IDEMPOTENCY_TABLE`` is set, else PostgreSQL (migrated here)."""
    if settings.idempotency_table:
        return DynamoDBIdempotencyStore(settings.idempotency_table)
    url = database.database_url(settings)
    database.migrate(url, settings.db_schema)
    return PostgresIdempotencyStore(postgres_pool(url, settings.db_schema).connection)

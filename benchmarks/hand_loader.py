"""The straightforward per-record loader a developer writes in an afternoon: the yardstick
``bench_sync`` holds the project against.

httpx pages through each collection (OAuth, cursor, ``updated_since`` = its own stored
newest ``updated_at``), pydantic validates every record, psycopg ``executemany`` upserts
the page (``ON CONFLICT DO UPDATE ... WHERE excluded.updated_at > t.updated_at``) and the
page is committed with the new high-water mark. No mapping of values, no raw copy, no Parquet.

    python -m benchmarks.hand_loader --base-url http://127.0.0.1:8600/v3 --database-url URL \\
        --properties PT-LIS-001 --entities reservations
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import psycopg
from pydantic import BaseModel


class Guest(BaseModel):
    guest_id: str | None = None
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    nif: str | None = None


class Room(BaseModel):
    type: str | None = None
    number: str | None = None
    floor: int | None = None


class Dates(BaseModel):
    check_in: date
    check_out: date
    created_at: datetime | None = None


class Pricing(BaseModel):
    total: Decimal
    currency: str
    rate_plan: str | None = None


class Reservation(BaseModel):
    reservation_id: str
    property_id: str
    guest: Guest
    room: Room
    dates: Dates
    pricing: Pricing
    status: str
    channel: str | None = None
    payment_method: str | None = None
    special_requests: str | None = None
    updated_at: datetime

    def row(self) -> tuple:
        g, r, d, p = self.guest, self.room, self.dates, self.pricing
        return (
            self.reservation_id, self.property_id, g.guest_id, g.name, g.email, g.phone,
            r.number, r.type, d.check_in, d.check_out, d.created_at, p.total, p.currency,
            p.rate_plan, self.status, self.channel, self.payment_method, self.updated_at,
        )  # fmt: skip


class GuestRecord(Guest):
    guest_id: str
    document_type: str | None = None
    document_number: str | None = None
    date_of_birth: date | None = None
    language: str | None = None
    marketing_consent: bool = False
    updated_at: datetime

    def row(self) -> tuple:
        return (
            self.guest_id, self.name, self.email, self.phone, self.country, self.nif,
            self.document_type, self.document_number, self.date_of_birth, self.language,
            self.marketing_consent, self.updated_at,
        )  # fmt: skip


class RoomRecord(BaseModel):
    room_id: str
    number: str
    type: str
    floor: int
    max_occupancy: int
    status: str
    updated_at: datetime

    def row(self) -> tuple:
        return (
            self.room_id, self.number, self.type, self.floor, self.max_occupancy, self.status,
            self.updated_at,
        )  # fmt: skip


class Payment(BaseModel):
    payment_id: str
    reservation_id: str | None = None
    amount: Decimal
    currency: str
    method: str | None = None
    status: str
    paid_at: datetime | None = None
    updated_at: datetime

    def row(self) -> tuple:
        return (
            self.payment_id, self.reservation_id, self.amount, self.currency, self.method,
            self.status, self.paid_at, self.updated_at,
        )  # fmt: skip


# collection -> (model, table, columns with their types; the first is the key)
TABLES: dict[str, tuple[type[BaseModel], str, list[tuple[str, str]]]] = {
    "reservations": (
        Reservation,
        "hand_reservations",
        [
            ("reservation_id", "text"), ("property_id", "text"), ("guest_id", "text"),
            ("guest_name", "text"), ("guest_email", "text"), ("guest_phone", "text"),
            ("room_number", "text"), ("room_type", "text"), ("check_in", "date"),
            ("check_out", "date"), ("booked_at", "timestamptz"), ("total", "numeric(12,2)"),
            ("currency", "text"), ("rate_plan", "text"), ("status", "text"), ("channel", "text"),
            ("payment_method", "text"), ("updated_at", "timestamptz"),
        ],
    ),
    "guests": (
        GuestRecord,
        "hand_guests",
        [
            ("guest_id", "text"), ("name", "text"), ("email", "text"), ("phone", "text"),
            ("country", "text"), ("nif", "text"), ("document_type", "text"),
            ("document_number", "text"), ("date_of_birth", "date"), ("language", "text"),
            ("marketing_consent", "boolean"), ("updated_at", "timestamptz"),
        ],
    ),
    "rooms": (
        RoomRecord,
        "hand_rooms",
        [
            ("room_id", "text"), ("number", "text"), ("type", "text"), ("floor", "integer"),
            ("max_occupancy", "integer"), ("status", "text"), ("updated_at", "timestamptz"),
        ],
    ),
    "payments": (
        Payment,
        "hand_payments",
        [
            ("payment_id", "text"), ("reservation_id", "text"), ("amount", "numeric(12,2)"),
            ("currency", "text"), ("method", "text"), ("status", "text"),
            ("paid_at", "timestamptz"), ("updated_at", "timestamptz"),
        ],
    ),
}  # fmt: skip


def create_tables(conn: psycopg.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS hand_state (property_id text, collection text,"
        " max_updated_at timestamptz, PRIMARY KEY (property_id, collection))"
    )
    for _, table, columns in TABLES.values():
        listed = ", ".join(f"{name} {kind}" for name, kind in columns)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} ({listed}, PRIMARY KEY ({columns[0][0]}))"
        )
    conn.commit()


def upsert_sql(table: str, columns: list[tuple[str, str]]) -> str:
    names = [name for name, _ in columns]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
    return (
        f"INSERT INTO {table} AS t ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"
        f" ON CONFLICT ({names[0]}) DO UPDATE SET {updates}"
        " WHERE excluded.updated_at > t.updated_at"
    )


def load_collection(
    api: httpx.Client, conn: psycopg.Connection, property_id: str, collection: str, limit: int
) -> int:
    model, table, columns = TABLES[collection]
    statement = upsert_sql(table, columns)
    row = conn.execute(
        "SELECT max_updated_at FROM hand_state WHERE property_id = %s AND collection = %s",
        (property_id, collection),
    ).fetchone()
    since = row[0] if row else None
    params: dict[str, str | int] = {"limit": limit}
    if since is not None:
        params["updated_since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    loaded = 0
    while True:
        response = api.get(f"/properties/{property_id}/{collection}", params=params)
        response.raise_for_status()
        page = response.json()
        records = [model.model_validate(record) for record in page["data"]]
        if records:
            with conn.cursor() as cursor:
                cursor.executemany(statement, [record.row() for record in records])
            newest = max(record.updated_at for record in records)
            since = newest if since is None or newest > since else since
            conn.execute(
                "INSERT INTO hand_state VALUES (%s, %s, %s) ON CONFLICT (property_id, collection)"
                " DO UPDATE SET max_updated_at = excluded.max_updated_at",
                (property_id, collection, since),
            )
            conn.commit()
            loaded += len(records)
        if page["next_cursor"] is None:
            return loaded
        params["cursor"] = page["next_cursor"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--client-id", default="bench-client")
    parser.add_argument("--client-secret", default="bench-secret")
    parser.add_argument("--properties", default="PT-LIS-001")
    parser.add_argument("--entities", choices=("reservations", "all"), default="reservations")
    parser.add_argument("--limit", type=int, default=500)
    args = parser.parse_args()
    collections = list(TABLES) if args.entities == "all" else ["reservations"]
    with httpx.Client(base_url=args.base_url, timeout=60) as api:
        token = api.post(
            "/oauth/token",
            json={
                "grant_type": "client_credentials",
                "client_id": args.client_id,
                "client_secret": args.client_secret,
            },
        )
        token.raise_for_status()
        api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        with psycopg.connect(args.database_url) as conn:
            create_tables(conn)
            for property_id in args.properties.split(","):
                for collection in collections:
                    count = load_collection(api, conn, property_id, collection, args.limit)
                    print(f"{property_id} {collection}: {count} records")


if __name__ == "__main__":
    main()

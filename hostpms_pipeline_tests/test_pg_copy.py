"""Binary COPY from Arrow, and COPY back to Arrow, against a real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import psycopg
import pyarrow as pa
import pytest
from psycopg import sql

from hostpms_pipeline.warehouse.pg_copy import copy_arrow, copy_query_to_arrow, uuid_bytes

COLUMNS = pa.schema(
    [
        ("id", pa.string()),
        ("name", pa.string()),
        ("day", pa.date32()),
        ("moment", pa.timestamp("us", tz="UTC")),
        ("amount", pa.decimal128(12, 2)),
        ("nights", pa.int32()),
        ("ordinal", pa.int64()),
        ("flag", pa.bool_()),
    ]
)
ROWS = [
    {
        "id": "6f1c3a52-8d0e-5b7a-9c41-2e5d7b9f0a13",
        "name": 'Zé "Pérez", segunda\nlinha',
        "day": date(2026, 2, 28),
        "moment": datetime(2026, 11, 24, 19, 30, 0, 123456, tzinfo=UTC),
        "amount": Decimal("9999999999.99"),
        "nights": 7,
        "ordinal": 2**40,
        "flag": True,
    },
    {  # before PostgreSQL's 2000-01-01 epoch, negative and small amounts
        "id": "00000000-0000-0000-0000-000000000000",
        "name": "",
        "day": date(1999, 12, 31),
        "moment": datetime(1970, 1, 1, tzinfo=UTC),
        "amount": Decimal("-0.01"),
        "nights": -1,
        "ordinal": 0,
        "flag": False,
    },
    {"id": "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "amount": Decimal("10000.50"), "ordinal": 1},
    {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, "x")), "amount": Decimal("0.00"), "ordinal": 3},
]


@pytest.fixture()
def target(pg_conn: psycopg.Connection) -> str:
    pg_conn.execute(
        "CREATE TABLE copy_target (id uuid, name text, day date, moment timestamptz,"
        " amount numeric(12, 2), nights integer, ordinal bigint, flag boolean, note jsonb)"
    )
    pg_conn.commit()
    return "copy_target"


def read_back(conn: psycopg.Connection, schema: pa.Schema = COLUMNS) -> list[dict]:
    names = sql.SQL(", ").join(map(sql.Identifier, schema.names))
    query = sql.SQL("SELECT {} FROM copy_target ORDER BY ordinal").format(names)
    return copy_query_to_arrow(conn, query, [], schema).to_pylist()


def test_every_value_round_trips_exactly(pg_conn: psycopg.Connection, target: str) -> None:
    copy_arrow(pg_conn, target, pa.Table.from_pylist(ROWS, schema=COLUMNS))

    expected = sorted(
        [{name: row.get(name) for name in COLUMNS.names} for row in ROWS],
        key=lambda row: row["ordinal"],
    )
    for row in expected:
        row["id"] = str(uuid.UUID(row["id"]))  # PostgreSQL writes uuids in lower case
    assert read_back(pg_conn) == expected


def test_columns_are_matched_by_name_in_any_order(pg_conn: psycopg.Connection, target: str) -> None:
    data = pa.Table.from_pylist(ROWS[:1], schema=COLUMNS).select(["ordinal", "amount", "id"])

    copy_arrow(pg_conn, target, data)

    assert read_back(pg_conn, COLUMNS.remove(1)) == [
        {"id": ROWS[0]["id"], "day": None, "moment": None, "amount": ROWS[0]["amount"], "nights": None,
         "ordinal": ROWS[0]["ordinal"], "flag": None}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("id", pa.array(["not-a-uuid"]), "canonical"),
        ("id", pa.array([None], pa.string()), "missing"),
        ("note", pa.array(["{}"]), "no binary COPY encoding"),
        ("nights", pa.array([2**40]), "cannot send"),
        ("missing_column", pa.array([1]), "no column"),
    ],
)
def test_what_cannot_be_encoded_is_refused_before_sending(
    pg_conn: psycopg.Connection, target: str, column: str, values: pa.Array, message: str
) -> None:
    data = pa.table({"ordinal": pa.array([1], pa.int64()), column: values})

    with pytest.raises(ValueError, match=message):
        copy_arrow(pg_conn, target, data)

    assert pg_conn.execute("SELECT count(*) FROM copy_target").fetchone() == (0,)


def test_uuid_bytes_decodes_sliced_and_upper_case_text() -> None:
    ids = [str(uuid.uuid4()) for _ in range(4)]
    texts = pa.chunked_array(
        [pa.array(ids[:2]), pa.array([ids[2].upper(), ids[3]]).slice(0)]
    ).slice(1)

    assert uuid_bytes(texts).to_pylist() == [uuid.UUID(text).bytes for text in ids[1:]]

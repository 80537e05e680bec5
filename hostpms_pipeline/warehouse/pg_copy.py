"""Arrow tables into and out of PostgreSQL by COPY, with no Python code per row.

Into PostgreSQL: binary COPY, encoded by pgpq (Rust) from the Arrow buffers.
PostgreSQL reads binary values without parsing text (no date, timestamp or
numeric parsing, no CSV quoting): about half the server CPU of CSV on a
million bookings, and less client CPU too (benchmarks/bench_upsert.py).
Binary COPY has no type tags, so each column is first given the Arrow type
whose encoding is the target column's wire format (``_WIRE_TYPES``), read from
the catalog; a column that has none is refused before anything is sent.

Out of PostgreSQL: ``COPY ... TO STDOUT (FORMAT csv)`` parsed by Arrow's CSV
reader as it streams in (pgpq only encodes).
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pgpq
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

COPY_CHUNK_ROWS = 65_536
CSV_BLOCK_BYTES = 4 << 20  # per block parsed by one Arrow thread
UUID_BYTES = pa.binary(16)

# PostgreSQL column type → the Arrow type pgpq encodes as that type's binary wire format.
_WIRE_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "uuid": UUID_BYTES,  # 16 raw bytes, as uuid_recv reads them
    "date": pa.date32(),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "boolean": pa.bool_(),
}
_UUID_TEXT_LENGTH = 36
_UUID_DASH_POSITIONS = [8, 13, 18, 23]
_UUID_DIGIT_POSITIONS = [i for i in range(_UUID_TEXT_LENGTH) if i not in _UUID_DASH_POSITIONS]
_HEX_DIGITS = np.full(256, 255, np.uint8)  # character → its hex value; 255: not a hex digit
for _digit, _char in enumerate(b"0123456789abcdef"):
    _HEX_DIGITS[_char] = _HEX_DIGITS[ord(chr(_char).upper())] = _digit


def copy_arrow(conn: psycopg.Connection, table: str, data: pa.Table) -> None:
    """COPY an Arrow table into ``table`` (columns matched by name) in binary format.

    Raises ValueError, before sending anything, if a column cannot be encoded
    for its target column (an unsupported type, or text that is not a uuid).
    """
    data = _on_the_wire(data, _column_types(conn, table, data.column_names))
    encoder = pgpq.ArrowToPostgresBinaryEncoder(data.schema)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, data.column_names))
    )
    cursor = conn.cursor()
    # A writer thread sends while pgpq encodes the next chunk.
    with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
        copy.write(encoder.write_header())
        for batch in data.to_batches(max_chunksize=COPY_CHUNK_ROWS):
            copy.write(encoder.write_batch(batch))
        copy.write(encoder.finish())


def _column_types(conn: psycopg.Connection, table: str, names: list[str]) -> dict[str, str]:
    rows = conn.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (sql.Identifier(table).as_string(conn),),
    )
    types = dict(rows.fetchall())
    if missing := [name for name in names if name not in types]:
        raise ValueError(f"table {table} has no column(s) {', '.join(missing)}")
    return {name: types[name] for name in names}


def _on_the_wire(data: pa.Table, pg_types: dict[str, str]) -> pa.Table:
    columns = [_wire_column(name, data[name], pg_types[name]) for name in data.column_names]
    return pa.table(columns, names=data.column_names)


def _wire_column(name: str, values: pa.ChunkedArray, pg_type: str) -> pa.ChunkedArray | pa.Array:
    if pg_type == "numeric" and pa.types.is_decimal(values.type):
        return values  # pgpq writes decimals as numeric digits, exactly
    wire = _WIRE_TYPES.get(pg_type)
    if wire is None:
        raise ValueError(f"column {name}: no binary COPY encoding from {values.type} to {pg_type}")
    if wire == UUID_BYTES and pa.types.is_string(values.type):
        return uuid_bytes(values)
    try:
        return values.cast(wire)  # same type: free; int64 → int32 checked for overflow
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise ValueError(
            f"column {name}: cannot send {values.type} as {pg_type}: {error}"
        ) from error


def uuid_bytes(texts: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Canonical uuid text (``8-4-4-4-12`` hex digits) → 16 bytes each, decoded in bulk."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if texts.null_count:
        raise ValueError("a uuid is missing")
    if not pc.all(pc.equal(pc.binary_length(texts), _UUID_TEXT_LENGTH), min_count=0).as_py():
        raise ValueError("a uuid is not in its canonical 8-4-4-4-12 text form")
    # Every text has the same length, so the characters form one (rows, 36) block.
    first = np.frombuffer(texts.buffers()[1], np.int32)[texts.offset]
    size = len(texts) * _UUID_TEXT_LENGTH
    chars = np.frombuffer(texts.buffers()[2], np.uint8)[first : first + size].reshape(
        -1, _UUID_TEXT_LENGTH
    )
    digits = _HEX_DIGITS[chars[:, _UUID_DIGIT_POSITIONS]]
    if not (chars[:, _UUID_DASH_POSITIONS] == ord("-")).all() or (digits == 255).any():
        raise ValueError("a uuid is not in its canonical 8-4-4-4-12 text form")
    octets = (digits[:, 0::2] << 4) | digits[:, 1::2]
    return pa.Array.from_buffers(
        UUID_BYTES, len(texts), [None, pa.py_buffer(np.ascontiguousarray(octets))]
    )


def copy_query_to_arrow(
    conn: psycopg.Connection, query: sql.Composable, params: list[object], schema: pa.Schema
) -> pa.Table:
    """Run ``query`` through ``COPY ... TO STDOUT (FORMAT csv)`` and parse it with Arrow into ``schema``.

    Arrow parses the stream as it arrives (in its own threads, without the GIL),
    so the whole CSV text is never held in memory and parsing overlaps the transfer.
    """
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv)").format(query)
    with conn.cursor().copy(statement, params) as copy:
        stream = _CopyStream(iter(copy))
        if stream.at_end():
            return schema.empty_table()  # Arrow refuses an empty CSV
        reader = pa_csv.open_csv(
            io.BufferedReader(stream, buffer_size=CSV_BLOCK_BYTES),
            read_options=pa_csv.ReadOptions(column_names=schema.names, block_size=CSV_BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(
                column_types=schema,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,  # "" is an empty string, bare empty is NULL
                true_values=["t"],  # PostgreSQL's text form of a boolean
                false_values=["f"],
            ),
        )
        table = reader.read_all()
    return table.cast(schema)


class _CopyStream(io.RawIOBase):
    """The rows of a ``COPY ... TO STDOUT`` as a readable byte stream."""

    def __init__(self, rows: Iterator[bytes | memoryview]) -> None:
        self._rows = rows
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def at_end(self) -> bool:
        return not self._fill()

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        output = memoryview(target).cast("B")
        written = 0
        while written < len(output) and self._fill():
            size = min(len(output) - written, len(self._pending))
            output[written : written + size] = self._pending[:size]
            self._pending = self._pending[size:]
            written += size
        return written

    def _fill(self) -> bool:
        while not self._pending:
            row = next(self._rows, None)
            if row is None:
                return False
            self._pending = memoryview(row).cast("B")
        return True

"""Records read from landed pages → an entity's rows and rejected records → one row per key.

An entity's spec declares its columns and reject rules (``entities/spec.py``);
this module evaluates them column-wise (pyarrow compute). Nothing in the hot
path builds a Python object per record, except the two digests per row (its id
and its state hash), which need hashlib, and the identifier checks that
python-stdnum and phonenumbers make.

Order of work: the fields that rules look at are parsed for every record; the
rules pick each record's first failure (rejected, with its reason); the
remaining columns (mapping, derived days, identifiers) and the digests are
computed for the accepted records only.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.engine import identifiers
from hostpms_pipeline.engine.mapping import MappingTables, map_values
from hostpms_pipeline.engine.parsing import (
    CURRENCY_CODES,
    DECIMAL_TEXT,
    PARSERS,
    parse_timestamps,
)
from hostpms_pipeline.entities.row_ids import SOURCE, row_id_bytes
from hostpms_pipeline.entities.schema import (
    REJECTED_SCHEMA,
    TIMESTAMP,
    first_of_each_id,
    row_schema,
    state_columns,
    utc_dates,
)
from hostpms_pipeline.entities.spec import (
    Blank,
    Column,
    Contains,
    DaysBetween,
    EntitySpec,
    Mapped,
    Missing,
    Negative,
    NotAfter,
    NotANumber,
    NotCurrency,
    Parsed,
    Phone,
    Raw,
    Ref,
    Reject,
    Text,
    Unparsed,
    Valid,
)

Columns = dict[str, Any]  # column name or raw path -> values


# --- Reject rules ----------------------------------------------------------------------


@cache
def reject_rules(spec: EntitySpec) -> tuple[Reject, ...]:
    """Every entity's rules on its key and version, then its own; the first one failed counts."""
    return (
        Reject(
            f"missing_{spec.id_field}",
            f"{spec.id_field} is missing or blank",
            Blank(Raw(spec.id_field)),
        ),
        # A row's id hashes "hostpms|hotel|id": a "|" in the hotel would make it ambiguous.
        Reject("invalid_property_id", "property_id contains '|'", Contains("hotel_id", "|")),
        Reject("missing_updated_at", "updated_at is missing", Missing(Raw("updated_at"))),
        Reject(
            "invalid_date",
            "updated_at is not an RFC 3339 timestamp",
            Unparsed("updated_at", "source_updated_at"),
        ),
        *spec.rejects,
    )


def _ref(raw: pa.Table, parsed: Columns, ref: Ref) -> Any:
    return raw[ref.path] if isinstance(ref, Raw) else parsed[ref]


def _fails(condition: Any, raw: pa.Table, parsed: Columns) -> Any:
    match condition:
        case Blank(ref):
            values = _ref(raw, parsed, ref)
            return pc.or_kleene(pc.is_null(values), pc.equal(pc.utf8_trim_whitespace(values), ""))
        case Missing(ref):
            return pc.is_null(_ref(raw, parsed, ref))
        case Unparsed(path, column):
            return pc.and_(pc.is_valid(raw[path]), pc.is_null(parsed[column]))
        case NotAfter(later, earlier):
            return pc.less_equal(parsed[later], parsed[earlier])
        case NotANumber(ref):
            matches = pc.match_substring_regex(_ref(raw, parsed, ref), DECIMAL_TEXT)
            return pc.invert(pc.fill_null(matches, False))
        case Negative(column):
            return pc.less(parsed[column], 0)
        case NotCurrency(ref):
            return pc.invert(pc.is_in(_ref(raw, parsed, ref), value_set=CURRENCY_CODES))
        case Contains(ref, text):
            return pc.match_substring(_ref(raw, parsed, ref), text)
    raise TypeError(f"not a reject condition: {condition!r}")


def _first_failed_rule(rules: tuple[Reject, ...], raw: pa.Table, parsed: Columns) -> pa.Array:
    """Per row, the index in ``rules`` of the first rule it fails; null if it passes them all."""
    failures = [pc.fill_null(_fails(rule.when, raw, parsed), False) for rule in rules]
    failures = [f.combine_chunks() if isinstance(f, pa.ChunkedArray) else f for f in failures]
    conditions = pa.StructArray.from_arrays(failures, names=[str(i) for i in range(len(failures))])
    return pc.case_when(conditions, *(pa.scalar(i, pa.int8()) for i in range(len(failures))))


# --- Column values ---------------------------------------------------------------------


def _first_set(raw: pa.Table, paths: str | tuple[str, ...]) -> Any:
    if isinstance(paths, str):
        return raw[paths]
    return pc.coalesce(*(raw[path] for path in paths))


def _days(values: Any) -> Any:
    return utc_dates(values).cast(pa.int32())


def _value(
    spec: EntitySpec, column: Column, raw: pa.Table, done: Columns, tables: MappingTables
) -> Any:
    """The column's values for the records of ``raw`` (``done``: the columns made before it)."""
    hotels = done["hotel_id"]
    match column.value:
        case Text(path):
            return raw[path]
        case Parsed(path, kind):
            return PARSERS[kind](_first_set(raw, path))
        case Mapped(path, table):
            return map_values(raw[path], table, tables)
        case DaysBetween(start, end):
            return pc.subtract(_days(done[end]), _days(done[start]))
        case Phone(path):
            return identifiers.phones(raw[path], hotels)
        case Valid(of, "phone"):
            # A phone column's own text, as received: parsed once already (cached), where
            # its E.164 form would be parsed again.
            source = spec.column(of).value
            texts = raw[source.path] if isinstance(source, Phone) else done[of]
            return identifiers.phones_valid(texts, hotels)
        case Valid(of, "tax_id", country):
            return identifiers.tax_ids_valid(done[of], done[country] if country else None, hotels)
        case Valid(of, "document", _, document_type):
            return identifiers.documents_valid(done[of], done[document_type], hotels)
    raise TypeError(f"not a column value: {column.value!r}")


def _parsed_for_rules(spec: EntitySpec, raw: pa.Table) -> Columns:
    """Key, version and every parsed column, for all records: the rules look at these."""
    parsed: Columns = {
        "source_updated_at": parse_timestamps(raw["updated_at"]),
        # The record's own property, else its page's.
        "hotel_id": pc.coalesce(raw["property_id"], raw["page_property_id"]),
    }
    for column in spec.columns:
        if isinstance(column.value, Parsed):
            parsed[column.name] = PARSERS[column.value.kind](_first_set(raw, column.value.path))
    return parsed


# --- Digests ---------------------------------------------------------------------------

_UUID_DASHES = (8, 13, 18, 23)


def _octets(digests: list[bytes], width: int) -> np.ndarray:
    """Equal-width ``digests`` as one row of bytes each."""
    return np.frombuffer(b"".join(digests), np.uint8).reshape(-1, width).copy()


def _messages(texts: pa.Array) -> list[bytes]:
    return texts.cast(pa.binary()).to_pylist()


def _hex_strings(octets: np.ndarray, dashes: tuple[int, ...] = ()) -> pa.Array:
    """Each row of ``octets`` as lowercase hex, with ``-`` at the given text positions."""
    rows = len(octets)
    digits = np.frombuffer(octets.tobytes().hex().encode(), np.uint8).reshape(
        rows, octets.shape[1] * 2
    )
    width = digits.shape[1] + len(dashes)
    if dashes:
        text = np.full((rows, width), ord("-"), np.uint8)
        text[:, [i for i in range(width) if i not in dashes]] = digits
        digits = text
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(digits)]
    )


def _row_ids(spec: EntitySpec, hotel_ids: Any, external_ids: Any) -> pa.Array:
    """:func:`row_id` over columns."""
    names = pc.binary_join_element_wise(SOURCE, hotel_ids, external_ids, "|")
    octets = np.frombuffer(row_id_bytes(spec, _messages(names)), np.uint8).reshape(-1, 16)
    return _hex_strings(octets, _UUID_DASHES)


def _canonical_text(values: Any) -> Any:
    if pa.types.is_timestamp(values.type):  # epoch microseconds: formatting with a zone is slow
        values = values.cast(pa.int64())
    return values.cast(pa.string())


def _state_hashes(spec: EntitySpec, columns: Columns) -> pa.Array:
    """Hex BLAKE2b-128 of the state columns' canonical text, unit-separated, null as NUL."""
    texts = [_canonical_text(columns[name]) for name in state_columns(spec)]
    canonical = pc.binary_join_element_wise(
        *texts, "\x1f", null_handling="replace", null_replacement="\x00"
    )
    blake2b = hashlib.blake2b
    octets = _octets([blake2b(text, digest_size=16).digest() for text in _messages(canonical)], 16)
    return _hex_strings(octets)


def state_hashes(spec: EntitySpec, rows: pa.Table) -> pa.Array:
    """The state hash of stored rows (``row_schema(spec)``), as a load computes it (GDPR
    erasure recomputes it after emptying personal columns, so a replay stays unchanged)."""
    return _state_hashes(spec, {name: rows[name] for name in state_columns(spec)})


# --- Rows --------------------------------------------------------------------------------


def _row_columns(
    spec: EntitySpec, raw: pa.Table, parsed: pa.Table, tables: MappingTables, synced_at: datetime
) -> Columns:
    """The row's columns for accepted records: ``raw`` their fields, ``parsed`` their parsed ones."""
    rows = raw.num_rows
    columns: Columns = {
        "external_id": raw[spec.id_field],
        "source": pa.repeat(pa.scalar(SOURCE), rows),
        "hotel_id": parsed["hotel_id"],
    }
    for column in spec.columns:
        if isinstance(column.value, Parsed):
            columns[column.name] = parsed[column.name]
        else:
            columns[column.name] = _value(spec, column, raw, columns, tables)
    columns.update(
        {
            "source_updated_at": parsed["source_updated_at"],
            "event_received_at": raw["received_at"],
            "raw_location": raw["raw_location"],
            "synced_at": pa.repeat(pa.scalar(synced_at.astimezone(UTC), TIMESTAMP), rows),
            "version": pa.repeat(pa.scalar(1, pa.int32()), rows),
        }
    )
    columns["id"] = _row_ids(spec, columns["hotel_id"], columns["external_id"])
    columns["state_hash"] = _state_hashes(spec, columns)
    return columns


def _rejected_table(
    spec: EntitySpec, rejected: pa.Table, updated_at: Any, rules: pa.Array, rejected_at: datetime
) -> pa.Table:
    all_rules = reject_rules(spec)
    reasons = pa.array([rule.reason for rule in all_rules])
    details = pa.array([rule.detail for rule in all_rules])
    rows = rejected.num_rows
    return pa.table(
        {
            "source": pa.repeat(pa.scalar(SOURCE), rows),
            "collection": pa.repeat(pa.scalar(spec.collection), rows),
            "hotel_id": rejected["page_property_id"],
            "external_id": rejected[spec.id_field],
            "reason": pc.take(reasons, rules),
            "detail": pc.take(details, rules),
            "raw_location": rejected["raw_location"],
            "record_index": rejected["record_index"],
            "source_updated_at": updated_at,
            "rejected_at": pa.repeat(pa.scalar(rejected_at.astimezone(UTC), TIMESTAMP), rows),
        },
        schema=REJECTED_SCHEMA,
    )


def to_rows(
    spec: EntitySpec, raw: pa.Table, tables: MappingTables, synced_at: datetime
) -> tuple[pa.Table, pa.Table]:
    """Split :func:`reading.read_landed` rows into (rows, rejected); every record lands in exactly one.

    Rows follow ``row_schema(spec)`` with ``version`` 1 (the store assigns real
    versions); rejected rows follow ``REJECTED_SCHEMA`` with the first rule they fail.
    """
    parsed = pa.table(_parsed_for_rules(spec, raw))
    failed_rule = _first_failed_rule(reject_rules(spec), raw, parsed)
    passes = pc.is_null(failed_rule)
    columns = _row_columns(spec, raw.filter(passes), parsed.filter(passes), tables, synced_at)
    schema = row_schema(spec)
    rows = pa.table({name: columns[name] for name in schema.names}, schema=schema)
    fails = pc.invert(passes)
    rejected = _rejected_table(
        spec,
        raw.filter(fails),
        parsed["source_updated_at"].filter(fails),
        failed_rule.drop_null(),
        synced_at,
    )
    return rows, rejected


# --- Deduplication -------------------------------------------------------------------------

# A row's id stands for its key (uuid5 of it: equal ids, equal keys). Per id, the newest
# state first; the rest only make ties deterministic whatever the input order.
_NEWEST_FIRST = [
    ("id", "ascending"),
    ("source_updated_at", "descending"),
    ("event_received_at", "descending"),
    ("raw_location", "descending"),
    ("state_hash", "descending"),
]


def deduplicate(rows: pa.Table) -> pa.Table:
    """One row per (source, external_id, hotel_id): the latest ``source_updated_at`` wins.

    Rows come out in id order, the order of the table's primary key: PostgreSQL
    then fills its index page by page, 1 to 2 s less server CPU for a million new
    rows than in arrival order.
    """
    if rows.num_rows < 2:
        return rows
    order = pc.sort_indices(rows, _NEWEST_FIRST)
    newest = first_of_each_id(rows["id"].take(order))
    return rows.take(order.filter(newest))  # the rows kept, gathered once

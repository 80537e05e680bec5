"""Landed raw HostPMS pages (polling pages and webhook drops) → one Arrow row per record.

The fields an entity's spec names are read, flattened (``guest.name``), every
value as text: nothing about a record can fail here; records that cannot be
rows are rejected by the transform. Well-typed pages are parsed all at once by
Arrow's JSON reader; if any is not, each file is parsed on its own, tolerantly
where needed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from hostpms_pipeline.engine.parsing import parse_timestamps
from hostpms_pipeline.entities.spec import EntitySpec, JsonType, RawField

_MIN_JSON_BLOCK = 4 << 20
_ESCAPED_NUL = rb"\u0000"  # JSON text has no other way to hold U+0000
_JSON_TYPES: dict[JsonType, pa.DataType] = {
    "string": pa.string(),
    "number": pa.float64(),  # cast to text below: shortest round trip, 1234.56 stays "1234.56"
    "integer": pa.int64(),
    "boolean": pa.bool_(),
}
Sections = dict[str | None, tuple[RawField, ...]]


@cache
def read_fields(spec: EntitySpec) -> Sections:
    """The fields read for ``spec`` (``EntitySpec.raw_fields``), by section (None: top level)."""
    sections: dict[str | None, list[RawField]] = {None: []}
    for raw in spec.raw_fields:
        section, _, _ = raw.path.rpartition(".")
        sections.setdefault(section or None, []).append(raw)
    return {section: tuple(fields) for section, fields in sections.items()}


def _name(raw: RawField) -> str:
    return raw.path.rpartition(".")[2]


def _record_type(sections: Sections, typed: bool) -> pa.StructType:
    def field_type(raw: RawField) -> pa.DataType:
        return _JSON_TYPES[raw.json] if typed else pa.string()

    top = [pa.field(_name(raw), field_type(raw)) for raw in sections[None]]
    nested = [
        pa.field(section, pa.struct([(_name(raw), field_type(raw)) for raw in fields]))
        for section, fields in sections.items()
        if section is not None
    ]
    return pa.struct(top + nested)


@cache
def page_schema(spec: EntitySpec, typed: bool) -> pa.Schema:
    """A landed page as the JSON reader reads it: typed (well-formed values) or all text."""
    envelope = [("property_id", pa.string()), ("received_at", pa.string())]
    record = _record_type(read_fields(spec), typed)
    return pa.schema([*envelope, ("data", pa.list_(record))])


def _parse_page(spec: EntitySpec, body: bytes) -> pa.Table:
    """One row; raises ``pa.ArrowInvalid`` if any record has a value of an unexpected type."""
    options = pa_json.ParseOptions(
        explicit_schema=page_schema(spec, True), unexpected_field_behavior="ignore"
    )
    read_options = pa_json.ReadOptions(use_threads=False)  # pages are parsed in parallel instead
    page = pa_json.read_json(
        pa.BufferReader(body), read_options=read_options, parse_options=options
    )
    return page.cast(page_schema(spec, False))


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()  # numbers keep their value; {} becomes text no rule accepts


def _coerce_record(sections: Sections, record: Any) -> dict[str, Any]:
    """The record reduced to the fields read, every value as text (the slow, tolerant path)."""
    record = record if isinstance(record, dict) else {}
    coerced: dict[str, Any] = {}
    for section, fields in sections.items():
        source = record if section is None else record.get(section)
        values = (
            {_name(raw): _as_text(source.get(_name(raw))) for raw in fields}
            if isinstance(source, dict)
            else {}
        )
        if section is None:
            coerced.update(values)
        else:
            coerced[section] = values
    return coerced


def _parse_page_tolerantly(spec: EntitySpec, location: str, body: bytes) -> pa.Table:
    page = orjson.loads(body)
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise ValueError(f"landed file {location} is not a HostPMS page: no data list")
    sections = read_fields(spec)
    row = {
        "property_id": _as_text(page.get("property_id")),
        "received_at": _as_text(page.get("received_at")),
        "data": [_coerce_record(sections, record) for record in page["data"]],
    }
    return pa.Table.from_pylist([row], schema=page_schema(spec, False))


def _one_line(body: bytes) -> bytes:
    """The NDJSON reader takes a page as one line: pretty-printed pages are compacted."""
    return body if b"\n" not in body.strip() else orjson.dumps(orjson.loads(body))


def _read_page(spec: EntitySpec, file: tuple[str, bytes]) -> pa.Table:
    location, body = file
    try:
        return _records_of([location], _parse_page(spec, _one_line(body)))
    except pa.ArrowInvalid:
        return _records_of([location], _parse_page_tolerantly(spec, location, body))


def _records_of(locations: list[str], pages: pa.Table) -> pa.Table:
    """One row per record of ``pages`` (one row per landed file, in ``locations`` order), with provenance.

    Columns keep the chunks of the JSON reader's blocks: gathering them into one
    would copy every record (0.4 s per million) and the kernels downstream do not
    need it.
    """
    data = pages.column("data")
    if data.null_count:
        broken = locations[pc.index(data.is_null(), True).as_py()]
        raise ValueError(f"landed file {broken} is not a HostPMS page: no data list")
    page_of_record = pc.list_parent_indices(data)
    lengths = pc.list_value_length(data)
    first_of_page = pc.take(pc.subtract(pc.cumulative_sum(lengths), lengths), page_of_record)
    provenance = pa.table(
        {
            "raw_location": pc.take(pa.array(locations, pa.string()), page_of_record),
            "record_index": pc.subtract(pa.arange(0, len(page_of_record)), first_of_page).cast(
                pa.int32()
            ),
            "received_at": pc.take(parse_timestamps(pages.column("received_at")), page_of_record),
            "page_property_id": pc.take(pages.column("property_id"), page_of_record),
        }
    )
    records = pc.list_flatten(data)
    fields = pa.table(records.flatten(), names=[field.name for field in records.type]).flatten()
    return pa.Table.from_arrays(
        provenance.columns + fields.columns, provenance.column_names + fields.column_names
    )


def _read_pages_at_once(spec: EntitySpec, files: list[tuple[str, bytes]]) -> pa.Table:
    """All ``files`` parsed by one multithreaded Arrow read, one page per NDJSON line.

    Raises ``pa.ArrowInvalid`` if any record has a value of an unexpected type.
    """
    lines = [_one_line(body).strip() for _, body in files]
    options = pa_json.ParseOptions(
        explicit_schema=page_schema(spec, True), unexpected_field_behavior="ignore"
    )
    # A block must hold a whole line (page); fewer, larger blocks also mean fewer Arrow tasks.
    read_options = pa_json.ReadOptions(
        block_size=max(_MIN_JSON_BLOCK, *(len(line) + 1 for line in lines))
    )
    # A BufferReader hands Arrow the bytes without copying them (a BytesIO copies every block).
    text = pa.BufferReader(b"\n".join(lines))
    pages = pa_json.read_json(text, read_options=read_options, parse_options=options)
    if pages.num_rows != len(files):  # an empty file makes no line: read file by file instead
        raise pa.ArrowInvalid("not one JSON page per landed file")
    return _records_of([location for location, _ in files], pages.cast(page_schema(spec, False)))


def read_landed(spec: EntitySpec, files: Iterable[tuple[str, bytes]]) -> pa.Table:
    """One row per record in ``(location, body)`` landed files of ``spec``'s collection."""
    files = list(files)
    if not files:
        empty = pa.Table.from_pylist([{"data": []}], schema=page_schema(spec, False))
        return _records_of([""], empty)
    try:
        records = _read_pages_at_once(spec, files)
    except pa.ArrowInvalid:
        with ThreadPoolExecutor(
            max_workers=os.cpu_count()
        ) as pool:  # pyarrow parses without the GIL
            tables = list(pool.map(lambda file: _read_page(spec, file), files))
        records = pa.concat_tables(
            tables
        ).combine_chunks()  # one chunk: kernels slow down per chunk
    # Scanning the bytes spares scanning every text column when there is no NUL.
    holds_nul = any(map(_holds_escaped_nul, (body for _, body in files)))
    return _without_nul(records) if holds_nul else records


def _holds_escaped_nul(body: bytes) -> bool:
    # Looking for a backslash first (memchr, and rare in JSON) is ten times faster.
    return b"\\" in body and _ESCAPED_NUL in body


def _without_nul(records: pa.Table) -> pa.Table:
    """Text with U+0000 (JSON allows ``\\u0000``) gets U+FFFD in its place: PostgreSQL text
    cannot hold it, and one such value would otherwise fail its whole batch every run."""
    for index, name in enumerate(records.column_names):
        values = records[name]
        if pa.types.is_string(values.type) and pc.any(pc.match_substring(values, "\x00")).as_py():
            records = records.set_column(
                index, name, pc.replace_substring(values, "\x00", "\ufffd")
            )
    return records

"""Finding a person's rows in PostgreSQL by keyed hashes alone (no clear identifier is needed
once the first one has been hashed, so an interrupted erasure can resume from its list).

A person is the set of ``(kind, hash)`` of their identifiers. Starting from the one named,
it grows with every identifier found on a matching row (a guest profile found by NIF
brings its email, phone and guest id), until nothing new is found.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from hostpms_pipeline.entities import ENTITIES
from hostpms_pipeline.entities.spec import EntitySpec, Identifier, IdentifierKind
from hostpms_pipeline.gdpr.keys import Hasher
from hostpms_pipeline.warehouse.pg_copy import copy_query_to_arrow

Person = set[tuple[IdentifierKind, str]]


def stored_identifiers(spec: EntitySpec) -> tuple[Identifier, ...]:
    """The spec's identifiers that a table column holds."""
    return tuple(i for i in spec.identifiers if i.column is not None)


@dataclass
class HashedTable:
    """Every row's id and hotel, with the hash of each identifier column."""

    spec: EntitySpec
    ids: pa.Array
    hotel_ids: pa.Array
    hashes: dict[Identifier, pa.Array]

    def matching(self, hashes: set[str]) -> np.ndarray:
        """A mask of the rows carrying any of ``hashes``."""
        mask = np.zeros(len(self.ids), dtype=bool)
        if not hashes:
            return mask
        value_set = pa.array(sorted(hashes), pa.string())
        for column in self.hashes.values():
            mask |= _numpy(pc.fill_null(pc.is_in(column, value_set=value_set), False))
        return mask

    def identifiers_of(self, mask: np.ndarray) -> Person:
        found: Person = set()
        rows = pa.array(mask)
        for identifier, column in self.hashes.items():
            for value in pc.unique(column.filter(rows)).to_pylist():
                if value is not None:
                    found.add((identifier.kind, value))
        return found


def _numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(values, pa.ChunkedArray):
        return values.to_numpy()
    return values.to_numpy(zero_copy_only=False)


def hash_table(conn: psycopg.Connection, spec: EntitySpec, hasher: Hasher) -> HashedTable:
    identifiers = stored_identifiers(spec)
    columns = [i.column for i in identifiers]
    schema = pa.schema(
        [("id", pa.string()), ("hotel_id", pa.string())] + [(c, pa.string()) for c in columns]
    )
    query = sql.SQL("SELECT id::text, hotel_id, {} FROM {} WHERE {}").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
        sql.Identifier(spec.table),
        sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns),
    )
    rows = copy_query_to_arrow(conn, query, [], schema).combine_chunks()
    hashes = {i: hasher.column(i.kind, rows[i.column], rows["hotel_id"]) for i in identifiers}
    return HashedTable(spec, rows["id"], rows["hotel_id"], hashes)


def hash_tables(
    conn: psycopg.Connection, hasher: Hasher, specs: Iterable[EntitySpec] = ENTITIES
) -> list[HashedTable]:
    return [hash_table(conn, spec, hasher) for spec in specs if stored_identifiers(spec)]


def expand(tables: list[HashedTable], person: Person) -> Person:
    """``person`` grown by every identifier on the rows matching it, until nothing new."""
    person = set(person)
    while True:
        hashes = {h for _, h in person}
        grown = set(person)
        for table in tables:
            grown |= table.identifiers_of(table.matching(hashes))
        if grown == person:
            return person
        person = grown

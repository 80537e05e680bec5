"""Portuguese and Spanish HostPMS values → unified values (contract section 3).

The tables are data (``mapping_tables.json``); an operator extends or overrides
them with a JSON file of the same shape (``HOSTPMS_MAPPING_FILE``) without
touching code. Lookups ignore letter case, accents and stray whitespace, because
HostPMS sends ``"Flexivel"`` and ``" quarto duplo "`` for the same values.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter

from hostpms_pipeline.entities.schema import UNKNOWN

# field -> {source value -> unified value}
_TABLES_SHAPE = TypeAdapter(dict[str, dict[str, str]])


def normalise_key(value: str) -> str:
    """The form values are compared in: no accents, casefolded, single spaces, trimmed."""
    decomposed = unicodedata.normalize("NFKD", value)
    without_accents = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(without_accents.casefold().split())


@dataclass(frozen=True)
class MappingTables:
    """Per field, normalised source value → unified value."""

    tables: Mapping[str, Mapping[str, str]]

    @classmethod
    def from_raw(cls, raw: Mapping[str, Mapping[str, str]]) -> MappingTables:
        return cls(
            {
                field: {normalise_key(k): v for k, v in values.items()}
                for field, values in raw.items()
            }
        )

    def merged_with(self, other: MappingTables) -> MappingTables:
        """Entries of ``other`` win; fields and values missing from it are kept."""
        fields = self.tables.keys() | other.tables.keys()
        return MappingTables(
            {f: {**self.tables.get(f, {}), **other.tables.get(f, {})} for f in fields}
        )

    def lookup(self, field: str, value: str | None) -> str:
        if value is None:
            return UNKNOWN
        return self.tables[field].get(normalise_key(value), UNKNOWN)


def _read_tables(text: str | bytes) -> MappingTables:
    return MappingTables.from_raw(_TABLES_SHAPE.validate_json(text))


def load_mapping_tables(override: Path | None = None) -> MappingTables:
    """The packaged tables, extended and overridden by ``override`` (settings.mapping_file) if given."""
    packaged = _read_tables(
        resources.files("hostpms_pipeline.entities").joinpath("mapping_tables.json").read_bytes()
    )
    if override is None:
        return packaged
    return packaged.merged_with(_read_tables(override.read_bytes()))


def map_values(values: pa.Array | pa.ChunkedArray, field: str, tables: MappingTables) -> pa.Array:
    """Map a string column through ``field``'s table; nulls and values no table knows become ``unknown``.

    Each distinct value is looked up once, so the cost is in the number of
    distinct values, not in rows.
    """
    if field not in tables.tables:
        raise KeyError(f"no mapping table for field {field!r}")
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    distinct = pc.unique(values).drop_null()
    mapped = pa.array([tables.lookup(field, value) for value in distinct.to_pylist()], pa.string())
    positions = pc.index_in(values, value_set=distinct)
    return pc.fill_null(pc.take(mapped, positions), UNKNOWN)

"""The vocabulary an entity is declared in: what differs between HostPMS collections, as data.

An :class:`EntitySpec` says which collection a record comes from, how each
column is made from the record's fields (which are read follows from that),
which records are rejected and why, which columns hold personal data, how its Parquet dataset is partitioned and
which checks guard it. The engine (``hostpms_pipeline.engine``) evaluates these
declarations column-wise and names no entity; adding an entity is a new spec.

Every spec'd table also has the engine's own columns: the natural key
(``id``, ``external_id``, ``source``, ``hotel_id``) first and the bookkeeping
(``source_updated_at``, ``event_received_at``, ``raw_location``, ``state_hash``,
``synced_at``, ``version``) last.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

# A column's type: Arrow's (``schema.ARROW_TYPES``), PostgreSQL's (``warehouse.tables``).
# Names, not Arrow objects: specs are read by light processes that never load Arrow.
ColumnType = Literal["string", "boolean", "int32", "date", "money", "timestamp"]

# --- Raw fields -----------------------------------------------------------------------

# How a well-formed page carries a field in JSON. Every value becomes text after
# reading (a malformed one too), so a wrong type rejects a record, never a page.
JsonType = Literal["string", "number", "integer", "boolean"]


@dataclass(frozen=True)
class RawField:
    path: str  # "guest.name": one level of nesting, as the contract's records have
    json: JsonType = "string"


# --- Column values: how a column is made from the record's fields ----------------------


@dataclass(frozen=True)
class Text:
    """The field's text as received."""

    path: str


ParseKind = Literal["timestamp", "date", "money", "integer", "boolean"]


@dataclass(frozen=True)
class Parsed:
    """The field parsed as ``kind``; null when missing or malformed (a reject rule may refuse it).

    Several paths: the first that is set (Portugal's and Spain's names for one field).
    """

    path: str | tuple[str, ...]
    kind: ParseKind


@dataclass(frozen=True)
class Mapped:
    """The field's local value through the value table ``table``; ``unknown`` if no entry knows it."""

    path: str
    table: str


@dataclass(frozen=True)
class DaysBetween:
    """Whole days from column ``start``'s (UTC) date to column ``end``'s."""

    start: str
    end: str


@dataclass(frozen=True)
class Phone:
    """The field as an E.164 number (the property's country as default region); as received if invalid."""

    path: str


@dataclass(frozen=True)
class Valid:
    """Whether another column holds a valid identifier (check digits); null when it is empty.

    ``kind`` ``phone``: a valid number. ``tax_id``: a Portuguese NIF or a Spanish
    NIF/DNI/NIE, for the country in column ``country`` when that is PT or ES, else
    the property's. ``document``: the document number, for the document types
    that carry check digits (Spain's DNI and NIE).
    """

    column: str
    kind: Literal["phone", "tax_id", "document"]
    country: str | None = None  # column naming the holder's country
    document_type: str | None = None  # column holding the unified document type


Value = Text | Parsed | Mapped | DaysBetween | Phone | Valid


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    value: Value
    required: bool = False  # NOT NULL in PostgreSQL; checked on every batch
    personal: bool = False  # guest personal data (GDPR)
    dictionary: bool = False  # few distinct values: dictionary-encoded in Parquet


def mapped(name: str, path: str, table: str, *, personal: bool = False) -> tuple[Column, Column]:
    """A mapped column and, beside it, the value as HostPMS sent it (``{name}_original``)."""
    return (
        Column(name, "string", Mapped(path, table), required=True, dictionary=True),
        Column(f"{name}_original", "string", Text(path), personal=personal, dictionary=True),
    )


# --- Reject rules: which records cannot be rows, and why -------------------------------


@dataclass(frozen=True)
class Raw:
    """A reference to a raw field's text (plain strings name the spec's columns)."""

    path: str


Ref = str | Raw


@dataclass(frozen=True)
class Blank:
    ref: Ref


@dataclass(frozen=True)
class Missing:
    ref: Ref


@dataclass(frozen=True)
class Unparsed:
    """The field has text, but the column parsed from it is empty."""

    path: str
    column: str


@dataclass(frozen=True)
class NotAfter:
    """Column ``later`` is not after column ``earlier``."""

    later: str
    earlier: str


@dataclass(frozen=True)
class NotANumber:
    ref: Ref


@dataclass(frozen=True)
class Negative:
    column: str


@dataclass(frozen=True)
class NotCurrency:
    """Not an active ISO 4217 code."""

    ref: Ref


@dataclass(frozen=True)
class Contains:
    ref: Ref
    text: str


Condition = Blank | Missing | Unparsed | NotAfter | NotANumber | Negative | NotCurrency | Contains


@dataclass(frozen=True)
class Reject:
    reason: str  # machine-readable code
    detail: str  # human-readable; never a record's values
    when: Condition


# --- Checks on every batch ------------------------------------------------------------


@dataclass(frozen=True)
class NotNegativeCheck:
    columns: tuple[str, ...]


@dataclass(frozen=True)
class CurrencyCheck:
    column: str


@dataclass(frozen=True)
class WithinCheck:
    """The column's values lie in ``values`` (``unknown`` included: reported by the mapping check)."""

    column: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class OrderCheck:
    later: str
    earlier: str


@dataclass(frozen=True)
class DaysCheck:
    """Derived day counts agree with their dates (``DaysBetween`` columns)."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class IvaCheck:
    """IVA is one of the property country's rates, on the total or included in it."""

    total: str
    iva: str


@dataclass(frozen=True)
class ValidIdentifiersCheck:
    """Counts identifiers that failed validation (``Valid`` columns); kept as received."""

    columns: tuple[str, ...]


Rule = (
    NotNegativeCheck
    | CurrencyCheck
    | WithinCheck
    | OrderCheck
    | DaysCheck
    | IvaCheck
    | ValidIdentifiersCheck
)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    rule: Rule
    blocking: bool  # a failure stops the batch before PostgreSQL


@dataclass(frozen=True)
class Reference:
    """Column ``column`` names a record of ``collection`` at the same property (a WARN when unknown)."""

    column: str
    collection: str


_JSON_OF_KIND: dict[ParseKind, JsonType] = {
    "money": "number",
    "integer": "integer",
    "boolean": "boolean",
    "timestamp": "string",
    "date": "string",
}


def _fields_of_value(value: Value) -> list[RawField]:
    match value:
        case Parsed(path, kind):
            paths = (path,) if isinstance(path, str) else path
            return [RawField(p, _JSON_OF_KIND[kind]) for p in paths]
        case Text(path) | Mapped(path) | Phone(path):
            return [RawField(path)]
    return []  # DaysBetween and Valid read other columns


def _fields_of_condition(condition: Condition) -> list[RawField]:
    ref = getattr(condition, "ref", None)
    paths = [ref.path] if isinstance(ref, Raw) else []
    if isinstance(condition, Unparsed):
        paths.append(condition.path)
    return [RawField(path) for path in paths]


# --- Personal data (GDPR) ---------------------------------------------------------------

# What kind of identifier names a person: what the suppression list hashes and an erasure
# matches on (normalised first: see ``hostpms_pipeline.gdpr.keys``).
IdentifierKind = Literal["email", "nif", "phone", "guest_id"]
IDENTIFIER_KINDS: tuple[IdentifierKind, ...] = ("email", "nif", "phone", "guest_id")


@dataclass(frozen=True)
class Identifier:
    """A field of the record that identifies its person, and the table column holding it (if any).

    ``guest_id`` identifiers are scoped by the property (a HostPMS guest id is per hotel).
    """

    kind: IdentifierKind
    field: str  # raw path
    column: str | None = None  # the stored column (as received, or normalised like phones)


# What an erasure does to a stored row of the person: empty its personal columns (the row's
# non-personal facts stay), or delete the row (the row *is* the person, e.g. a guest profile).
ErasureAction = Literal["redact", "delete"]


# --- The entity ------------------------------------------------------------------------


@dataclass(frozen=True)
class EntitySpec:
    collection: str  # the HostPMS collection: /properties/{id}/{collection}
    id_field: str  # the record's HostPMS id, stored as external_id
    table: str  # PostgreSQL table, Parquet dataset and the assets' names
    row: str  # one row, in words ("booking")
    id_namespace: uuid.UUID  # of the uuid5 ids; fixed forever, or every id changes
    columns: tuple[Column, ...]
    rejects: tuple[Reject, ...] = ()
    partition_column: str = "source_updated_at"  # Parquet partitions: this column's UTC date
    checks: tuple[Check, ...] = ()
    references: tuple[Reference, ...] = ()
    guest_key: str | None = None  # column tying a row to a person (GDPR)
    events: tuple[str, ...] = ()  # webhook events that carry this entity
    preview: tuple[str, ...] = ()  # columns shown in the UI (never personal data)
    description: str = ""
    fields: tuple[RawField, ...] = ()  # fields read beyond those the columns and rejects name
    # GDPR: the fields that identify the record's person, raw fields holding personal data
    # that no column stores (redacted in the raw store all the same), and what an erasure
    # does to a matching row.
    identifiers: tuple[Identifier, ...] = ()
    personal_fields: tuple[str, ...] = ()
    erasure: ErasureAction = "redact"

    @property
    def raw_fields(self) -> tuple[RawField, ...]:
        """Every field a record is read for: the key's, and each one a column or a reject
        rule names, typed as a well-formed page carries it."""
        named = [RawField(self.id_field), RawField("property_id"), RawField("updated_at")]
        for column in self.columns:
            named += _fields_of_value(column.value)
        for reject in self.rejects:
            named += _fields_of_condition(reject.when)
        typed: dict[str, RawField] = {}
        for raw in (*named, *self.fields):
            if raw.path not in typed or typed[raw.path].json == "string":
                typed[raw.path] = raw
        return tuple(typed.values())

    @property
    def personal_columns(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns if column.personal)

    @property
    def redacted_fields(self) -> tuple[str, ...]:
        """Every raw field emptied when a record is redacted: those the personal columns are
        made from, the identifying ones and the other personal fields."""
        paths: list[str] = []
        for column in self.columns:
            if column.personal:
                paths += [raw.path for raw in _fields_of_value(column.value)]
        paths += [identifier.field for identifier in self.identifiers]
        paths += list(self.personal_fields)
        return tuple(dict.fromkeys(path for path in paths if path != self.id_field))

    @property
    def guest_key_kind(self) -> IdentifierKind | None:
        """The kind of identifier ``guest_key`` holds (its pseudonymous key's input)."""
        if self.guest_key is None:
            return None
        return next(i.kind for i in self.identifiers if i.column == self.guest_key)

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)

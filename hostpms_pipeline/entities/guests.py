"""Guest profiles: identity documents validated, phones in E.164.

An identifier that fails validation is kept as received and flagged in its
``*_valid`` column (a WARN check counts them): a front desk's typo must not drop
a guest.
"""

import uuid

from hostpms_pipeline.entities.spec import (
    Check,
    Column,
    EntitySpec,
    Identifier,
    Parsed,
    Phone,
    Reject,
    Text,
    Unparsed,
    Valid,
    ValidIdentifiersCheck,
    mapped,
)
from hostpms_pipeline.hostpms import contract

GUESTS = EntitySpec(
    collection="guests",
    id_field=contract.RECORD_ID_FIELD["guests"],
    table="guests",
    row="guest",
    id_namespace=uuid.UUID("0b8e6f1d-5a2c-5e47-8d13-7c9a4f2e6b51"),
    columns=(
        Column("name", "string", Text("name"), personal=True),
        Column("email", "string", Text("email"), personal=True),
        Column("phone", "string", Phone("phone"), personal=True),
        Column("phone_valid", "boolean", Valid("phone", "phone"), dictionary=True),
        Column("country", "string", Text("country"), dictionary=True),
        Column("nif", "string", Text("nif"), personal=True),
        Column("nif_valid", "boolean", Valid("nif", "tax_id", country="country"), dictionary=True),
        *mapped("document_type", "document_type", "document_type"),
        Column("document_number", "string", Text("document_number"), personal=True),
        Column(
            "document_number_valid",
            "boolean",
            Valid("document_number", "document", document_type="document_type"),
            dictionary=True,
        ),
        Column("date_of_birth", "date", Parsed("date_of_birth", "date"), personal=True),
        Column("language", "string", Text("language"), dictionary=True),
        Column(
            "marketing_consent",
            "boolean",
            Parsed("marketing_consent", "boolean"),
            dictionary=True,
        ),
    ),
    rejects=(
        Reject(
            "invalid_date",
            "date_of_birth is not a YYYY-MM-DD date",
            Unparsed("date_of_birth", "date_of_birth"),
        ),
    ),
    checks=(
        Check(
            "identifiers_valid",
            "Phones, NIFs and DNI/NIE numbers pass validation (invalid ones are kept as received).",
            ValidIdentifiersCheck(("phone_valid", "nif_valid", "document_number_valid")),
            blocking=False,
        ),
    ),
    guest_key="external_id",
    identifiers=(
        Identifier("guest_id", "guest_id", column="external_id"),
        Identifier("email", "email", column="email"),
        Identifier("phone", "phone", column="phone"),
        Identifier("nif", "nif", column="nif"),
    ),
    erasure="delete",  # the row is the person's profile
    events=contract.events_of("guests"),
    preview=(
        "external_id",
        "hotel_id",
        "country",
        "language",
        "document_type",
        "phone_valid",
        "nif_valid",
        "marketing_consent",
        "version",
    ),
    description="Guest profiles, the latest state of each; personal data stays in PostgreSQL.",
)

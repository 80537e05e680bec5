"""Payments: amounts exact to the cent, methods and statuses unified.

Parquet partitions payments by ``paid_at``'s day; a payment not yet paid sits in
the null partition until it is.
"""

import uuid

from hostpms_pipeline.entities.spec import (
    Check,
    Column,
    CurrencyCheck,
    EntitySpec,
    Missing,
    Negative,
    NotANumber,
    NotCurrency,
    NotNegativeCheck,
    Parsed,
    Raw,
    Reference,
    Reject,
    Text,
    Unparsed,
    mapped,
)
from hostpms_pipeline.hostpms import contract

PAYMENTS = EntitySpec(
    collection="payments",
    id_field=contract.RECORD_ID_FIELD["payments"],
    table="payments",
    row="payment",
    id_namespace=uuid.UUID("9a1c4e7f-2d3b-5c68-b0e5-4f8a6d2c1e97"),
    columns=(
        Column("reservation_id", "string", Text("reservation_id")),
        Column("amount", "money", Parsed("amount", "money"), required=True),
        Column("currency", "string", Text("currency"), dictionary=True),
        *mapped("method", "method", "payment_method"),
        *mapped("status", "status", "payment_status"),
        Column("paid_at", "timestamp", Parsed("paid_at", "timestamp")),
    ),
    rejects=(
        Reject(
            "amount_not_a_number", "amount is missing or not a number", NotANumber(Raw("amount"))
        ),
        Reject("amount_out_of_range", "amount does not fit numeric(12,2)", Missing("amount")),
        Reject("negative_amount", "amount is negative", Negative("amount")),
        Reject(
            "invalid_currency", "currency is not an ISO 4217 code", NotCurrency(Raw("currency"))
        ),
        Reject(
            "invalid_date", "paid_at is not an RFC 3339 timestamp", Unparsed("paid_at", "paid_at")
        ),
    ),
    partition_column="paid_at",
    checks=(
        Check(
            "amounts_not_negative",
            "Amounts are not negative.",
            NotNegativeCheck(("amount",)),
            blocking=True,
        ),
        Check(
            "currency_is_iso_4217",
            "Currency is an ISO 4217 code.",
            CurrencyCheck("currency"),
            blocking=True,
        ),
    ),
    references=(Reference("reservation_id", "reservations"),),
    events=contract.events_of("payments"),
    preview=(
        "external_id",
        "hotel_id",
        "reservation_id",
        "amount",
        "currency",
        "method",
        "status",
        "paid_at",
        "version",
    ),
    description="Payments, the latest state of each.",
)

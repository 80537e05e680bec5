"""Reservations → bookings (contract sections 3 and 5, the unified booking of TR-2).

Choices where the contract is silent (docs/contract-choices.md):

- A stay has at least one night: check-out on the check-in day is rejected.
- A missing ``dates.created_at`` leaves ``booked_at`` and ``lead_time`` empty; an
  unparseable one is rejected. IVA or tourist tax that is not a number is left
  empty (the IVA check reports it) rather than rejecting the booking.
- Currencies are active ISO 4217 codes, in upper case as the standard writes them.
"""

import uuid

from hostpms_pipeline.entities.spec import (
    Check,
    Column,
    CurrencyCheck,
    DaysBetween,
    DaysCheck,
    EntitySpec,
    Identifier,
    IvaCheck,
    Missing,
    Negative,
    NotAfter,
    NotANumber,
    NotCurrency,
    NotNegativeCheck,
    OrderCheck,
    Parsed,
    Raw,
    Reject,
    Text,
    Unparsed,
    mapped,
)
from hostpms_pipeline.hostpms import contract

RESERVATIONS = EntitySpec(
    collection="reservations",
    id_field=contract.RECORD_ID_FIELD["reservations"],
    table="bookings",
    row="booking",
    id_namespace=uuid.UUID("6f1c3a52-8d0e-5b7a-9c41-2e5d7b9f0a13"),
    columns=(
        Column("guest_name", "string", Text("guest.name"), personal=True),
        Column("guest_email", "string", Text("guest.email"), personal=True),
        Column("guest_phone", "string", Text("guest.phone"), personal=True),
        Column("room_number", "string", Text("room.number"), dictionary=True),
        *mapped("room_type", "room.type", "room_type"),
        Column(
            "check_in_date",
            "date",
            Parsed("dates.check_in", "date"),
            required=True,
            dictionary=True,
        ),
        Column(
            "check_out_date",
            "date",
            Parsed("dates.check_out", "date"),
            required=True,
            dictionary=True,
        ),
        Column("booked_at", "timestamp", Parsed("dates.created_at", "timestamp")),
        Column("total_amount", "money", Parsed("pricing.total", "money"), required=True),
        Column("currency", "string", Text("pricing.currency"), dictionary=True),
        Column("iva_amount", "money", Parsed("pricing.iva", "money")),
        Column(
            "tourist_tax_amount",
            "money",
            Parsed(("pricing.taxa_turistica", "pricing.tasa_turistica"), "money"),
        ),
        *mapped("rate_plan", "pricing.rate_plan", "rate_plan"),
        *mapped("status", "status", "status"),
        *mapped("channel", "channel", "channel"),
        Column("payment_method", "string", Text("payment_method"), dictionary=True),
        # Days from booked_at's UTC date to check-in (TR-2 sample: 19).
        Column(
            "lead_time",
            "int32",
            DaysBetween("booked_at", "check_in_date"),
            dictionary=True,
        ),
        Column(
            "length_of_stay",
            "int32",
            DaysBetween("check_in_date", "check_out_date"),
            required=True,
            dictionary=True,
        ),
    ),
    rejects=(
        Reject("missing_dates", "dates.check_in is missing", Missing(Raw("dates.check_in"))),
        Reject("missing_dates", "dates.check_out is missing", Missing(Raw("dates.check_out"))),
        Reject(
            "invalid_date",
            "dates.check_in is not a YYYY-MM-DD date",
            Unparsed("dates.check_in", "check_in_date"),
        ),
        Reject(
            "invalid_date",
            "dates.check_out is not a YYYY-MM-DD date",
            Unparsed("dates.check_out", "check_out_date"),
        ),
        Reject(
            "invalid_date",
            "dates.created_at is not an RFC 3339 timestamp",
            Unparsed("dates.created_at", "booked_at"),
        ),
        Reject(
            "checkout_not_after_checkin",
            "check-out is not after check-in",
            NotAfter("check_out_date", "check_in_date"),
        ),
        Reject(
            "total_not_a_number",
            "pricing.total is missing or not a number",
            NotANumber(Raw("pricing.total")),
        ),
        Reject(
            "total_out_of_range",
            "pricing.total does not fit numeric(12,2)",
            Missing("total_amount"),
        ),
        Reject("negative_total", "pricing.total is negative", Negative("total_amount")),
        Reject(
            "invalid_currency",
            "pricing.currency is not an ISO 4217 code",
            NotCurrency(Raw("pricing.currency")),
        ),
    ),
    partition_column="booked_at",
    checks=(
        Check(
            "checkout_after_checkin",
            "Check-out is after check-in.",
            OrderCheck("check_out_date", "check_in_date"),
            blocking=True,
        ),
        Check(
            "stay_and_lead_time_match_dates",
            "length_of_stay and lead_time agree with the dates.",
            DaysCheck(("length_of_stay", "lead_time")),
            blocking=True,
        ),
        Check(
            "currency_is_iso_4217",
            "Currency is an ISO 4217 code.",
            CurrencyCheck("currency"),
            blocking=True,
        ),
        Check(
            "totals_not_negative",
            "Totals are not negative.",
            NotNegativeCheck(("total_amount",)),
            blocking=True,
        ),
        Check(
            "iva_consistent_with_country",
            "IVA matches a Portuguese or Spanish rate.",
            IvaCheck("total_amount", "iva_amount"),
            blocking=False,
        ),
    ),
    guest_key="guest_email",
    # The reservation's guest: matched and redacted on these (NIF and guest id are read for
    # that alone: bookings store neither, nor the free-text special requests).
    identifiers=(
        Identifier("email", "guest.email", column="guest_email"),
        Identifier("phone", "guest.phone", column="guest_phone"),
        Identifier("nif", "guest.nif"),
        Identifier("guest_id", "guest.guest_id"),
    ),
    personal_fields=("special_requests",),
    events=contract.events_of("reservations"),
    preview=(
        "external_id",
        "hotel_id",
        "check_in_date",
        "check_out_date",
        "total_amount",
        "currency",
        "status",
        "channel",
        "room_type",
        "version",
    ),
    description="Reservations as unified bookings (TR-2), the latest state of each.",
)

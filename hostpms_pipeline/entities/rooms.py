"""Room inventory and housekeeping status."""

import uuid

from hostpms_pipeline.entities.spec import (
    Check,
    Column,
    EntitySpec,
    Parsed,
    Reject,
    Text,
    Unparsed,
    WithinCheck,
    mapped,
)
from hostpms_pipeline.hostpms import contract

ROOM_STATUSES = ("clean", "dirty", "occupied", "inspecting", "out_of_service")

ROOMS = EntitySpec(
    collection="rooms",
    id_field=contract.RECORD_ID_FIELD["rooms"],
    table="rooms",
    row="room",
    id_namespace=uuid.UUID("3d5f7a9c-1b2e-5f40-8a6c-9e0d2b4f6a83"),
    columns=(
        Column("number", "string", Text("number"), dictionary=True),
        *mapped("type", "type", "room_type"),
        Column("floor", "int32", Parsed("floor", "integer"), dictionary=True),
        Column("max_occupancy", "int32", Parsed("max_occupancy", "integer"), dictionary=True),
        *mapped("status", "status", "room_status"),
    ),
    rejects=(
        Reject("invalid_integer", "floor is not an integer", Unparsed("floor", "floor")),
        Reject(
            "invalid_integer",
            "max_occupancy is not an integer",
            Unparsed("max_occupancy", "max_occupancy"),
        ),
    ),
    checks=(
        Check(
            "room_status_within_set",
            f"Room status is one of {', '.join(ROOM_STATUSES)} (or unknown, reported).",
            WithinCheck("status", (*ROOM_STATUSES, "unknown")),
            blocking=True,
        ),
    ),
    events=contract.events_of("rooms"),
    preview=("external_id", "hotel_id", "number", "type", "floor", "status", "version"),
    description="Rooms and their housekeeping status, the latest state of each.",
)

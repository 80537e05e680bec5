"""Odd and malformed reservations, injected on purpose (``anomaly_rate``).

Each anomaly rewrites every version of a chosen reservation, so the oddity is
stable over the record's history. The first three make a record that cannot be a
booking (it must be rejected with its reason); the rest are values a mapping has
to cope with (unknown, or a known value in another spelling).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hostpms_pipeline.simulator.people import ascii_fold

Reservation = dict[str, Any]


def _without_id(record: Reservation, rng: random.Random) -> None:
    del record["reservation_id"]


def _check_out_before_check_in(record: Reservation, rng: random.Random) -> None:
    dates = record["dates"]
    dates["check_in"], dates["check_out"] = dates["check_out"], dates["check_in"]


def _total_not_a_number(record: Reservation, rng: random.Random) -> None:
    record["pricing"]["total"] = "abc"


def _unknown_status(record: Reservation, rng: random.Random) -> None:
    record["status"] = "pendente_confirmacao"


def _unknown_channel(record: Reservation, rng: random.Random) -> None:
    record["channel"] = "trivago"


def _unknown_room_type(record: Reservation, rng: random.Random) -> None:
    record["room"]["type"] = "Penthouse"


# Spellings that mean the same value: other case, surrounding spaces, no accents.
SPELLINGS: tuple[Callable[[str], str], ...] = (
    str.upper,
    str.lower,
    lambda v: f"  {v} ",
    ascii_fold,
)


def _variant_spelling(record: Reservation, rng: random.Random) -> None:
    spell = rng.choice(SPELLINGS)
    holder, field = rng.choice(
        [
            (record, "status"),
            (record, "channel"),
            (record["room"], "type"),
            (record["pricing"], "rate_plan"),
        ]
    )
    holder[field] = spell(holder[field])


ANOMALIES: dict[str, Callable[[Reservation, random.Random], None]] = {
    "missing_reservation_id": _without_id,
    "check_out_before_check_in": _check_out_before_check_in,
    "total_not_a_number": _total_not_a_number,
    "unknown_status": _unknown_status,
    "unknown_channel": _unknown_channel,
    "unknown_room_type": _unknown_room_type,
    "variant_spelling": _variant_spelling,
}


def pick_anomaly(rng: random.Random, rate: float) -> str | None:
    """The anomaly for one reservation, or None; draws the same numbers whatever the rate."""
    roll, name = rng.random(), rng.choice(list(ANOMALIES))
    return name if roll < rate else None

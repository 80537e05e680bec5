"""Seeded, deterministic record histories for one property.

Every record is a list of versions (created, maybe updated, cancelled, checked in
and out...), each with its ``updated_at``. Histories are a function of (seed,
property id, reservation count, anchor, anomaly rate) only, so two processes with
the same configuration serve the same data. Check-ins spread over ``history_days``
before the anchor and ``future_days`` after it; versions after the anchor become
visible as the simulator clock passes them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from typing import Any

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.simulator import vocabulary as vocab
from hostpms_pipeline.simulator.anomalies import ANOMALIES, pick_anomaly
from hostpms_pipeline.simulator.config import SimulatorConfig
from hostpms_pipeline.simulator.people import Person, make_person

RECORD = dict[str, Any]


@dataclass(slots=True)
class Version:
    """One state of one record; visible while ``updated_at <= now < superseded_at``."""

    updated_at: datetime
    key: str  # the record's id; kept even when an anomaly removes it from ``record``
    record: RECORD
    event: str | None  # the webhook event this change raises, if any
    superseded_at: datetime | None = None

    def visible_at(self, now: datetime) -> bool:
        return self.updated_at <= now and (self.superseded_at is None or self.superseded_at > now)


PropertyHistories = dict[contract.Collection, list[list[Version]]]


@dataclass
class RoomSpec:
    number: str
    floor: int
    kind: str  # unified room type key (vocabulary.ROOM_TYPE_WEIGHTS)
    booked_nights: set[date] = field(default_factory=set)

    def is_free(self, nights: Iterable[date]) -> bool:
        return self.booked_nights.isdisjoint(nights)


@dataclass
class StaySpec:
    """What happens to one reservation, drawn before any record is written."""

    check_in: date
    nights: int
    created_at: datetime
    room_kind: str
    guests: int
    channel: str
    rate_plan: str
    payment_method: str
    outcome: str  # "stay", "cancelled" or "no_show"
    modified: bool
    special_request: str | None
    anomaly: str | None
    reservation_id: str = ""
    room: RoomSpec | None = None
    guest_id: str = ""

    @property
    def check_out(self) -> date:
        return self.check_in + timedelta(days=self.nights)

    @property
    def night_dates(self) -> list[date]:
        return [self.check_in + timedelta(days=n) for n in range(self.nights)]


def _at(day: date, hour: int, minutes: int = 0) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC) + timedelta(minutes=minutes)


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def generate_property(config: SimulatorConfig, property_id: str) -> PropertyHistories:
    anchor = config.resolved_anchor()
    rng = random.Random(
        f"{config.seed}|{property_id}|{config.reservations_per_property}|{anchor.isoformat()}"
    )
    country = contract.property_country(property_id)
    rooms = _rooms(rng, config.reservations_per_property)
    first_day = anchor.date() - timedelta(days=config.history_days)
    days = [first_day + timedelta(days=n) for n in range(config.history_days + config.future_days)]
    demand = list(accumulate(vocab.MONTH_DEMAND[day.month] for day in days))
    stays = sorted(
        (
            _draw_stay(rng, country, days, demand, config.anomaly_rate)
            for _ in range(config.reservations_per_property)
        ),
        key=lambda stay: stay.created_at,
    )
    builder = _HistoryBuilder(
        property_id, country, anchor - timedelta(days=config.history_days + 60)
    )
    for serial, stay in enumerate(stays, start=1):
        stay.reservation_id = f"RSV-{10000 + serial}"
        stay.room = _allocate(rng, rooms, stay)
        stay.guest_id = builder.guest_for(rng, stay)
        builder.add_reservation(rng, stay)
    for room in rooms:
        builder.add_room(room)
    return builder.histories()


def _rooms(rng: random.Random, reservation_count: int) -> list[RoomSpec]:
    count = max(6, min(300, reservation_count // 15))
    per_floor = 10
    return [
        RoomSpec(
            number=f"{index // per_floor + 1}{index % per_floor + 1:02d}",
            floor=index // per_floor + 1,
            kind=_weighted(rng, vocab.ROOM_TYPE_WEIGHTS),
        )
        for index in range(count)
    ]


def _draw_stay(
    rng: random.Random,
    country: str,
    days: list[date],
    cumulative_demand: list[float],
    anomaly_rate: float,
) -> StaySpec:
    check_in = rng.choices(days, cum_weights=cumulative_demand)[0]
    lead_days = min(300, int(rng.expovariate(1 / 30)))
    created_at = _at(check_in - timedelta(days=lead_days), 0) + timedelta(
        seconds=rng.randint(0, 13 * 3600)  # before the 14:00 check-in even when booked that day
    )
    room_kind = _weighted(rng, vocab.ROOM_TYPE_WEIGHTS)
    rate_plan = _weighted(rng, vocab.RATE_PLAN_WEIGHTS)
    cancel_chance = 0.18 if rate_plan == "flexible" else 0.05
    roll = rng.random()
    outcome = (
        "cancelled"
        if roll < cancel_chance
        else "no_show"
        if roll < cancel_chance + 0.03
        else "stay"
    )
    requests = vocab.VOCABULARY[country].special_requests
    return StaySpec(
        check_in=check_in,
        nights=rng.choices(range(1, 11), weights=[14, 22, 20, 14, 10, 6, 8, 2, 2, 2])[0],
        created_at=created_at,
        room_kind=room_kind,
        guests=rng.randint(1, vocab.MAX_OCCUPANCY[room_kind]),
        channel=_weighted(rng, vocab.CHANNEL_WEIGHTS),
        rate_plan=rate_plan,
        payment_method=_weighted(rng, vocab.PAYMENT_METHOD_WEIGHTS[country]),
        outcome=outcome,
        modified=rng.random() < 0.25,
        special_request=rng.choice(requests) if rng.random() < 0.3 else None,
        anomaly=pick_anomaly(rng, anomaly_rate),
    )


def _allocate(rng: random.Random, rooms: list[RoomSpec], stay: StaySpec) -> RoomSpec:
    """A free room of the booked type, else any free room (an upgrade), else overbook."""
    nights = stay.night_dates
    of_kind = [room for room in rooms if room.kind == stay.room_kind]
    room = rng.choice(
        [r for r in of_kind if r.is_free(nights)]
        or [r for r in rooms if r.is_free(nights)]
        or of_kind
        or rooms
    )
    stay.room_kind = room.kind
    if stay.outcome != "cancelled":
        room.booked_nights.update(nights)
    return room


class _HistoryBuilder:
    def __init__(self, property_id: str, country: str, rooms_opened_at: datetime):
        self.property_id = property_id
        self.country = country
        self.words = vocab.VOCABULARY[country]
        self.tourist_tax = vocab.tourist_tax(property_id)
        self.rooms_opened_at = rooms_opened_at
        self.guests: dict[str, tuple[Person, datetime]] = {}
        self.guest_ids: list[str] = []  # creation order, for drawing a returning guest
        self.room_changes: dict[str, list[tuple[datetime, str]]] = {}
        self.payment_serial = 0
        self.out: PropertyHistories = {collection: [] for collection in contract.COLLECTIONS}

    def histories(self) -> PropertyHistories:
        return self.out

    # --- guests ------------------------------------------------------------
    def guest_for(self, rng: random.Random, stay: StaySpec) -> str:
        if self.guest_ids and rng.random() < 0.15:  # a returning guest
            return rng.choice(self.guest_ids)
        guest_id = f"GST-{len(self.guests) + 1:05d}"
        self.guest_ids.append(guest_id)
        person = make_person(rng, self.country, len(self.guests) + 1)
        self.guests[guest_id] = (person, stay.created_at)
        versions = [(stay.created_at, False, "guest.created")]
        if rng.random() < 0.2:  # later gives marketing consent
            versions.append((stay.created_at + timedelta(days=rng.randint(1, 60)), True, None))
        self.out["guests"].append(
            _history(
                guest_id,
                [
                    (
                        at,
                        {
                            **self._guest_fields(guest_id, person),
                            "document_type": person.document_type,
                            "document_number": person.document_number,
                            "date_of_birth": person.date_of_birth,
                            "language": person.language,
                            "marketing_consent": consent,
                        },
                        event,
                    )
                    for at, consent, event in versions
                ],
            )
        )
        return guest_id

    def _guest_fields(self, guest_id: str, person: Person) -> RECORD:
        return {
            "guest_id": guest_id,
            "name": person.name,
            "email": person.email,
            "phone": person.phone,
            "country": person.country,
            "nif": person.nif,
        }

    # --- reservations, and the payments and room changes they cause ---------
    def add_reservation(self, rng: random.Random, stay: StaySpec) -> None:
        arrival = _at(stay.check_in, 14, rng.randint(0, 360))
        departure = _at(stay.check_out, 8, rng.randint(0, 180))
        changes: list[tuple[datetime, str, str]] = [
            (stay.created_at, "confirmed", "reservation.created")
        ]
        if stay.modified:
            changes.append(
                (_between(rng, stay.created_at, arrival), "confirmed", "reservation.updated")
            )
        if stay.outcome == "cancelled":
            changes.append(
                (_between(rng, changes[-1][0], arrival), "cancelled", "reservation.cancelled")
            )
        elif stay.outcome == "no_show":
            changes.append(
                (_at(stay.check_in + timedelta(days=1), 3), "no_show", "reservation.no_show")
            )
        else:
            changes += [
                (arrival, "checked_in", "reservation.check_in"),
                (departure, "checked_out", "reservation.check_out"),
            ]
            self._room_turnover(rng, stay, arrival, departure)
        total = _price(stay)
        base = self._reservation_record(stay, total)
        # The modification: the guest asks for something else before arriving.
        changed_request = next(r for r in self.words.special_requests if r != stay.special_request)
        anomaly = ANOMALIES.get(stay.anomaly or "")
        entries = []
        for index, (at, status, event) in enumerate(changes):
            record = _deep_copy(base)
            record["status"] = self.words.reservation_status[status]
            if stay.modified and index >= 1:
                record["special_requests"] = changed_request
            if anomaly:
                anomaly(record, random.Random(stay.reservation_id))
            entries.append((at, record, event))
        self.out["reservations"].append(_history(stay.reservation_id, entries))
        self._payment(rng, stay, changes, total)

    def _reservation_record(self, stay: StaySpec, total: float) -> RECORD:
        person, _ = self.guests[stay.guest_id]
        room = stay.room
        assert room is not None
        rate = self.words.iva_rate
        taxed_nights = min(stay.nights, self.tourist_tax.max_nights)
        return {
            "reservation_id": stay.reservation_id,
            "property_id": self.property_id,
            "guest": self._guest_fields(stay.guest_id, person),
            "room": {
                "type": self.words.room_type[room.kind],
                "number": room.number,
                "floor": room.floor,
            },
            "dates": {
                "check_in": stay.check_in.isoformat(),
                "check_out": stay.check_out.isoformat(),
                "created_at": contract.format_timestamp(stay.created_at),
            },
            "pricing": {
                "total": total,
                "currency": "EUR",
                "rate_plan": self.words.rate_plan[stay.rate_plan],
                "iva": round(total * rate / (1 + rate), 2),
                self.words.tourist_tax_field: round(
                    self.tourist_tax.per_guest_night * taxed_nights * stay.guests, 2
                ),
            },
            "status": "",
            "channel": self.words.channel[stay.channel],
            "payment_method": stay.payment_method,
            "special_requests": stay.special_request,
        }

    def _payment(
        self,
        rng: random.Random,
        stay: StaySpec,
        changes: list[tuple[datetime, str, str]],
        amount: float,
    ) -> None:
        """Non-refundable: paid when booked. Flexible: pending at arrival, paid at departure."""
        final_at, final_status, _ = changes[-1]
        if stay.rate_plan == "non_refundable":
            states = [(stay.created_at + timedelta(minutes=2), "paid")]
            if final_status == "cancelled" and rng.random() < 0.1:  # a goodwill refund
                states.append((final_at + timedelta(minutes=5), "refunded"))
        elif final_status == "checked_out":
            states = [
                (changes[-2][0] + timedelta(minutes=1), "pending"),
                (final_at + timedelta(minutes=1), "paid"),
            ]
        elif final_status == "no_show":
            states = [
                (final_at + timedelta(minutes=1), "pending"),
                (final_at + timedelta(days=1), rng.choice(["paid", "failed"])),
            ]
        else:
            return
        self.payment_serial += 1
        payment_id = f"PAY-{self.payment_serial:05d}"
        paid_at = next((at for at, status in states if status == "paid"), None)
        entries = []
        for at, status in states:
            record = {
                "payment_id": payment_id,
                "reservation_id": stay.reservation_id,
                "amount": amount,
                "currency": "EUR",
                "method": self.words.payment_method[stay.payment_method],
                "status": self.words.payment_status[status],
                "paid_at": contract.format_timestamp(paid_at)
                if paid_at and at >= paid_at
                else None,
            }
            entries.append((at, record, "payment.received" if status == "paid" else None))
        self.out["payments"].append(_history(payment_id, entries))

    def _room_turnover(
        self, rng: random.Random, stay: StaySpec, arrival: datetime, departure: datetime
    ) -> None:
        """Occupied at arrival; dirty, inspected and clean within two hours of departure."""
        assert stay.room is not None
        changes = self.room_changes.setdefault(stay.room.number, [])
        changes += [
            (arrival, "occupied"),
            (departure, "dirty"),
            (departure + timedelta(hours=1), "inspecting"),
        ]
        following = [stay.check_out + timedelta(days=n) for n in range(3)]
        if rng.random() < 0.05 and stay.room.is_free(following):  # maintenance
            changes += [
                (departure + timedelta(hours=2), "out_of_service"),
                (_at(stay.check_out + timedelta(days=2), 10), "clean"),
            ]
        else:
            changes.append((departure + timedelta(hours=2), "clean"))

    def add_room(self, room: RoomSpec) -> None:
        base = {
            "room_id": f"RM-{room.number}",
            "number": room.number,
            "type": self.words.room_type[room.kind],
            "floor": room.floor,
            "max_occupancy": vocab.MAX_OCCUPANCY[room.kind],
        }
        changes = [(self.rooms_opened_at, "clean", None)] + [
            (at, status, "room.status_changed")
            for at, status in self.room_changes.get(room.number, [])
        ]
        self.out["rooms"].append(
            _history(
                base["room_id"],
                [
                    (at, {**base, "status": self.words.room_status[status]}, event)
                    for at, status, event in changes
                ],
            )
        )


def _price(stay: StaySpec) -> float:
    """Accommodation total, IVA included: nightly rate by room type and month."""
    nightly = vocab.NIGHTLY_RATE_EUR[stay.room_kind]
    discount = vocab.NON_REFUNDABLE_DISCOUNT if stay.rate_plan == "non_refundable" else 1.0
    return round(sum(nightly * vocab.MONTH_PRICE[n.month] for n in stay.night_dates) * discount, 2)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    span = max(2.0, (end - start).total_seconds())
    return start + timedelta(seconds=int(span * rng.uniform(0.2, 0.9)) or 1)


def _deep_copy(record: RECORD) -> RECORD:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in record.items()}


def _history(key: str, entries: list[tuple[datetime, RECORD, str | None]]) -> list[Version]:
    """Versions in time order, each strictly later than the one before, linked to its successor."""
    versions: list[Version] = []
    for at, record, event in sorted(entries, key=lambda entry: entry[0]):
        if versions and at <= versions[-1].updated_at:
            at = versions[-1].updated_at + timedelta(seconds=1)
        record["updated_at"] = contract.format_timestamp(at)
        versions.append(Version(updated_at=at, key=key, record=record, event=event))
    for earlier, later in zip(versions, versions[1:], strict=False):
        earlier.superseded_at = later.updated_at
    return versions

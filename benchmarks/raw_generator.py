"""Fast generator of realistic landed raw files, for benchmarks (not for tests).

Each yielded item is ``(location, body)`` exactly as the landing code stores a
polled page: a JSON envelope with the page's reservations as HostPMS sends them,
with Portuguese values for ``PT-*`` properties and Spanish for ``ES-*`` ones.
Some values come in the variants HostPMS is known to send (other case, no
accents, stray spaces); optionally some reservations reappear later in a newer
state (duplicates for deduplication) and some records are malformed (rejects).

    from benchmarks.raw_generator import generate_landed_pages, generate_newer_versions
    files = list(generate_landed_pages(1_000_000, updated_fraction=0.1))
    # A later landing: newer states of 10% of the bookings above.
    later = list(generate_newer_versions(generate_landed_pages(1_000_000), 0.1))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import orjson

from hostpms_pipeline.settings import DEFAULT_PROPERTY_IDS
from hostpms_pipeline.simulator.people import DNI_LETTERS

# Source vocabularies per country, as HostPMS sends them (contract section 3),
# with the variants real data has.
VOCABULARY: dict[str, dict[str, tuple[str, ...]]] = {
    "PT": {
        "status": (
            "confirmado",
            "confirmado",
            "cancelado",
            "check_in",
            "check_out",
            "no_show",
            "Confirmado",
        ),
        "channel": (
            "direto",
            "booking_com",
            "booking_com",
            "expedia",
            "airbnb",
            "agencia",
            "Booking_Com",
        ),
        "room_type": (
            "Quarto Duplo",
            "Quarto Twin",
            "Suite",
            "Quarto Individual",
            " quarto duplo ",
        ),
        "rate_plan": ("Flexível", "Não Reembolsável", "Flexivel", "Nao Reembolsavel"),
        "first_names": ("João", "Maria", "Ana", "Pedro", "Inês", "Tiago", "Beatriz", "Rui"),
        "last_names": ("Silva", "Santos", "Ferreira", "Pereira", "Oliveira", "Costa", "Gonçalves"),
        "tax_key": ("taxa_turistica",),
        "phone_prefix": ("+3519",),
    },
    "ES": {
        "status": (
            "confirmada",
            "confirmada",
            "cancelada",
            "check_in",
            "check_out",
            "no_show",
            "CONFIRMADA",
        ),
        "channel": ("directo", "booking_com", "booking_com", "expedia", "airbnb", "agencia"),
        "room_type": (
            "Habitación Doble",
            "Habitación Twin",
            "Suite",
            "Habitación Individual",
            "Habitacion Doble",
        ),
        "rate_plan": ("Flexible", "No Reembolsable", "flexible"),
        "first_names": ("José", "Lucía", "Carmen", "Javier", "Álvaro", "Sofía", "Pablo", "Marta"),
        "last_names": ("García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Fernández"),
        "tax_key": ("tasa_turistica",),
        "phone_prefix": ("+346",),
    },
}
# Guests, rooms and payments (contract section 3), with variants.
OTHER_VOCABULARY: dict[str, dict[str, tuple[str, ...]]] = {
    "PT": {
        "document_type": ("cartao_cidadao", "passaporte", "bilhete_identidade", "Cartao_Cidadao"),
        "room_status": ("limpo", "sujo", "ocupado", "em_inspecao", "fora_de_servico", "Limpo"),
        "payment_method": ("cartao_credito", "cartao_debito", "multibanco", "mbway", "numerario"),
        "payment_status": ("pago", "pago", "pendente", "reembolsado", "falhado"),
    },
    "ES": {
        "document_type": ("dni", "pasaporte", "nie", "DNI"),
        "room_status": ("limpia", "sucia", "ocupada", "en_inspeccion", "fuera_de_servicio"),
        "payment_method": ("tarjeta_credito", "tarjeta_debito", "bizum", "efectivo"),
        "payment_status": ("pagado", "pagado", "pendiente", "reembolsado", "fallido"),
    },
}
ROOMS_PER_PROPERTY = 300  # room records are status changes of these rooms
PAYMENT_METHODS = ("credit_card", "debit_card", "bank_transfer", "cash", "mbway")
# Malformed records, each the kind of fault one reject reason covers.
FAULTS: tuple[tuple[str, Any], ...] = (
    ("reservation_id", None),
    ("total", "quatrocentos"),
    ("total", -10.0),
    ("currency", "euro"),
    ("check_out", "2020-01-01"),
    ("check_in", "2024-13-45"),
)
EPOCH = np.datetime64("2026-01-01T00:00:00", "s")
_SECTION_OF_FAULT = {
    "total": "pricing",
    "currency": "pricing",
    "check_in": "dates",
    "check_out": "dates",
}


def _pick(rng: np.random.Generator, options: tuple[str, ...], count: int) -> list[str]:
    return [options[i] for i in rng.integers(0, len(options), count).tolist()]


def _page_records(
    rng: np.random.Generator, property_id: str, numbers: list[int], first_second: int
) -> list[dict]:
    """Reservations for one page, every random value drawn for the whole page at once."""
    count = len(numbers)
    country = property_id.split("-", 1)[0]
    vocabulary = VOCABULARY[country]
    updated = EPOCH + np.arange(first_second, first_second + count).astype("timedelta64[s]")
    created = updated - rng.integers(0, 31 * 86_400, count).astype("timedelta64[s]")
    check_in = created.astype("datetime64[D]") + rng.integers(0, 181, count).astype(
        "timedelta64[D]"
    )
    nights = rng.integers(1, 11, count)
    total_cents = rng.integers(6_000, 40_001, count) * nights
    guests = rng.integers(1, 5_000_000, count).tolist()
    names = zip(
        _pick(rng, vocabulary["first_names"], count),
        _pick(rng, vocabulary["last_names"], count),
        strict=True,
    )
    tax_key = vocabulary["tax_key"][0]
    domain = country.lower()
    return [
        {
            "reservation_id": f"RSV-{number:09d}",
            "property_id": property_id,
            "guest": {
                "guest_id": f"GST-{guest:08d}",
                "name": f"{first} {last}",
                "email": f"guest{guest}@example.{domain}",
                "phone": f"{vocabulary['phone_prefix'][0]}{guest:08d}",
                "country": country,
                "nif": f"{100_000_000 + guest}",
            },
            "room": {"type": room_type, "number": str(room), "floor": room // 100},
            "dates": {"check_in": arrival, "check_out": departure, "created_at": f"{booked}Z"},
            "pricing": {
                "total": cents / 100,
                "currency": "EUR",
                "rate_plan": rate_plan,
                "iva": round(cents * 0.06) / 100,
                tax_key: float(2 * stay),
            },
            "status": status,
            "channel": channel,
            "payment_method": payment_method,
            "special_requests": "Quarto silencioso" if country == "PT" else "Habitación tranquila",
            "updated_at": f"{changed}Z",
        }
        for number, guest, (
            first,
            last,
        ), room_type, room, arrival, departure, booked, cents, stay, rate_plan, status, channel, payment_method, changed in zip(
            numbers,
            guests,
            names,
            _pick(rng, vocabulary["room_type"], count),
            rng.integers(101, 621, count).tolist(),
            np.datetime_as_string(check_in).tolist(),
            np.datetime_as_string(check_in + nights).tolist(),
            np.datetime_as_string(created).tolist(),
            total_cents.tolist(),
            nights.tolist(),
            _pick(rng, vocabulary["rate_plan"], count),
            _pick(rng, vocabulary["status"], count),
            _pick(rng, vocabulary["channel"], count),
            _pick(rng, PAYMENT_METHODS, count),
            np.datetime_as_string(updated).tolist(),
            strict=True,
        )
    ]


def _pt_nif(body: int) -> str:
    digits = f"{body:08d}"
    remainder = sum(int(d) * w for d, w in zip(digits, range(9, 1, -1), strict=True)) % 11
    return digits + ("0" if remainder < 2 else str(11 - remainder))


def _guest_records(
    rng: np.random.Generator, property_id: str, numbers: list[int], first_second: int
) -> list[dict]:
    count = len(numbers)
    country = property_id.split("-", 1)[0]
    words, other = VOCABULARY[country], OTHER_VOCABULARY[country]
    updated = EPOCH + np.arange(first_second, first_second + count).astype("timedelta64[s]")
    born = np.datetime64("1950-01-01") + rng.integers(0, 50 * 365, count).astype("timedelta64[D]")
    records = []
    for number, first, last, kind, birthday, consent, changed in zip(
        numbers,
        _pick(rng, words["first_names"], count),
        _pick(rng, words["last_names"], count),
        _pick(rng, other["document_type"], count),
        np.datetime_as_string(born).tolist(),
        (rng.random(count) < 0.3).tolist(),
        np.datetime_as_string(updated).tolist(),
        strict=True,
    ):
        dni = f"{number % 100_000_000:08d}{DNI_LETTERS[number % 100_000_000 % 23]}"
        nif = _pt_nif(10_000_000 + number % 90_000_000) if country == "PT" else dni
        records.append(
            {
                "guest_id": f"GST-{number:09d}",
                "name": f"{first} {last}",
                "email": f"guest{number}@example.{country.lower()}",
                "phone": f"{words['phone_prefix'][0]}{number % 10_000_000:08d}",
                "country": country,
                "nif": nif,
                "document_type": kind,
                "document_number": dni if country == "ES" else f"CC{number:08d}",
                "date_of_birth": birthday,
                "language": country.lower(),
                "marketing_consent": consent,
                "updated_at": f"{changed}Z",
            }
        )
    return records


def _room_records(
    rng: np.random.Generator, property_id: str, numbers: list[int], first_second: int
) -> list[dict]:
    count = len(numbers)
    country = property_id.split("-", 1)[0]
    updated = EPOCH + np.arange(first_second, first_second + count).astype("timedelta64[s]")
    rooms = (np.array(numbers) % ROOMS_PER_PROPERTY).tolist()
    return [
        {
            "room_id": f"RM-{room:04d}",
            "number": f"{room // 30 + 1}{room % 30:02d}",
            "type": room_type,
            "floor": room // 30 + 1,
            "max_occupancy": 2,
            "status": status,
            "updated_at": f"{changed}Z",
        }
        for room, room_type, status, changed in zip(
            rooms,
            _pick(rng, VOCABULARY[country]["room_type"], count),
            _pick(rng, OTHER_VOCABULARY[country]["room_status"], count),
            np.datetime_as_string(updated).tolist(),
            strict=True,
        )
    ]


def _payment_records(
    rng: np.random.Generator, property_id: str, numbers: list[int], first_second: int
) -> list[dict]:
    count = len(numbers)
    country = property_id.split("-", 1)[0]
    other = OTHER_VOCABULARY[country]
    updated = EPOCH + np.arange(first_second, first_second + count).astype("timedelta64[s]")
    return [
        {
            "payment_id": f"PAY-{number:09d}",
            "reservation_id": f"RSV-{number:09d}",
            "amount": cents / 100,
            "currency": "EUR",
            "method": method,
            "status": status,
            "paid_at": f"{changed}Z",
            "updated_at": f"{changed}Z",
        }
        for number, cents, method, status, changed in zip(
            numbers,
            rng.integers(6_000, 400_001, count).tolist(),
            _pick(rng, other["payment_method"], count),
            _pick(rng, other["payment_status"], count),
            np.datetime_as_string(updated).tolist(),
            strict=True,
        )
    ]


RECORDS = {
    "reservations": _page_records,
    "guests": _guest_records,
    "rooms": _room_records,
    "payments": _payment_records,
}
# Raw records of a realistic mix: a guest for most stays, a payment for most, and a
# room's status changes (few rooms, many versions: deduplication takes most of them).
MIX = {"reservations": 0.45, "guests": 0.25, "rooms": 0.05, "payments": 0.25}
# A newer state of a record of each collection: the field that changes.
_CHANGES = {"guests": "marketing_consent", "rooms": "status", "payments": "status"}


def _break_record(rng: np.random.Generator, record: dict) -> None:
    field, value = FAULTS[int(rng.integers(0, len(FAULTS)))]
    section = _SECTION_OF_FAULT.get(field)
    (record[section] if section else record)[field] = value


def _as_landed_page(
    property_id: str,
    page: int,
    last_second: int,
    records: list[dict],
    last: bool,
    collection: str = "reservations",
) -> tuple[str, bytes]:
    received_at = str(EPOCH + np.timedelta64(last_second, "s") + np.timedelta64(250_000, "us"))
    envelope = {
        "kind": "polling",
        "source": "hostpms",
        "property_id": property_id,
        "collection": collection,
        "received_at": f"{received_at}Z",
        "request": {"updated_since": "2026-01-01T00:00:00Z", "limit": len(records)},
        "next_cursor": None if last else f"c{page + 1}",
        "data": records,
    }
    return (
        f"hostpms/{property_id}/polling/{received_at.replace(':', '-')}Z-{page:06d}_{collection}.json",
        orjson.dumps(envelope),
    )


def generate_landed_pages(
    n_records: int,
    records_per_page: int = 500,
    properties: Sequence[str] = DEFAULT_PROPERTY_IDS,
    seed: int = 7,
    updated_fraction: float | None = None,
    bad_fraction: float = 0.0,
    collection: str = "reservations",
) -> Iterator[tuple[str, bytes]]:
    """Yield ``(location, body)`` landed polling pages holding ``n_records`` records in all
    (of ``collection``; malformed ones only for reservations).

    ``updated_fraction``: share of records that are a newer state of a reservation
    already generated (same id, later ``updated_at``, other values).
    ``bad_fraction``: share of records made malformed, one fault each.
    """
    rng = np.random.default_rng(seed)
    issued: dict[str, list[int]] = {property_id: [] for property_id in properties}
    next_number = 1
    for page, start in enumerate(range(0, n_records, records_per_page), start=1):
        property_id = properties[(page - 1) % len(properties)]
        count = min(records_per_page, n_records - start)
        earlier = issued[property_id]
        repeats = int((rng.random(count) < (updated_fraction or 0.0)).sum()) if earlier else 0
        fresh = list(range(next_number, next_number + count - repeats))
        next_number += len(fresh)
        numbers = (
            fresh + [earlier[i] for i in rng.integers(0, len(earlier), repeats).tolist()]
            if earlier
            else fresh
        )
        earlier.extend(fresh)
        records = RECORDS[collection](rng, property_id, numbers, start)
        for index in np.flatnonzero(rng.random(count) < bad_fraction).tolist():
            _break_record(rng, records[index])
        last = start + count >= n_records
        yield _as_landed_page(property_id, page, start + count, records, last, collection)


def generate_newer_versions(
    previous_pages: Iterable[tuple[str, bytes]],
    fraction: float,
    records_per_page: int = 500,
    seed: int = 8,
) -> Iterator[tuple[str, bytes]]:
    """Pages carrying a newer, different state of ``fraction`` of the reservations in
    ``previous_pages``: same reservation, property and ``created_at``; later
    ``updated_at`` and ``received_at``; another status and total (so another state hash).
    """
    rng = np.random.default_rng(seed)
    newer: dict[str, list[dict]] = {}
    latest = EPOCH
    for _, body in previous_pages:
        page = orjson.loads(body)
        latest = max(latest, np.datetime64(page["received_at"].rstrip("Z"), "s"))
        chosen = np.flatnonzero(rng.random(len(page["data"])) < fraction).tolist()
        newer.setdefault(page["property_id"], []).extend(page["data"][i] for i in chosen)
    second = int((latest - EPOCH) / np.timedelta64(1, "s")) + 86_400  # a day after the previous run
    page_number = 1_000_000  # numbers of their own, so locations never clash with earlier pages
    for property_id, records in newer.items():
        statuses = VOCABULARY[property_id.split("-", 1)[0]]["status"]
        collection = _collection_of(records[0]) if records else "reservations"
        for start in range(0, len(records), records_per_page):
            page_records = records[start : start + records_per_page]
            for record in page_records:
                second += 1
                if collection == "reservations":
                    position = statuses.index(record["status"]) + 1
                    record["status"] = statuses[position % len(statuses)]
                    record["pricing"]["total"] = round(record["pricing"]["total"] + 10.5, 2)
                else:
                    field = _CHANGES[collection]
                    record[field] = not record[field] if field == "marketing_consent" else "x"
                record["updated_at"] = f"{EPOCH + np.timedelta64(second, 's')}Z"
            page_number += 1
            last = start + records_per_page >= len(records)
            yield _as_landed_page(property_id, page_number, second, page_records, last, collection)


def _collection_of(record: dict) -> str:
    # A payment names its reservation too: its own id decides.
    ids = {"payment_id": "payments", "guest_id": "guests", "room_id": "rooms"}
    return next(
        (collection for field, collection in ids.items() if field in record), "reservations"
    )


if __name__ == "__main__":
    import sys
    import time

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    began = time.perf_counter()
    size = sum(
        len(body)
        for _, body in generate_landed_pages(count, updated_fraction=0.1, bad_fraction=0.001)
    )
    print(f"{count:,} records, {size / 1e6:.0f} MB in {time.perf_counter() - began:.2f} s")

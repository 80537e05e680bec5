"""Guest identities: names with accents, emails, phones and valid tax ids."""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass

FIRST_NAMES = {
    "PT": (
        "João",
        "Conceição",
        "Maria",
        "José",
        "Inês",
        "Gonçalo",
        "Beatriz",
        "Tomás",
        "Ana",
        "Rui",
        "Leonor",
        "Sebastião",
        "Mariana",
        "Luís",
        "Matilde",
        "António",
    ),
    "ES": (
        "Íñigo",
        "Begoña",
        "Lucía",
        "Álvaro",
        "María José",
        "Jesús",
        "Nuria",
        "Sofía",
        "Javier",
        "Ainhoa",
        "Andrés",
        "Rocío",
        "Martín",
        "Elena",
        "Sergio",
        "Inés",
    ),
    "FR": ("Amélie", "Théo", "Chloé", "Jérôme", "Léa", "François"),
    "DE": ("Jürgen", "Lena", "Björn", "Anja", "Lukas", "Jörg"),
    "GB": ("Oliver", "Emily", "Harry", "Charlotte", "George", "Isla"),
    "US": ("Michael", "Jennifer", "Chris", "Ashley", "Daniel", "Megan"),
}
SURNAMES = {
    "PT": (
        "Silva",
        "Santos",
        "Ferreira",
        "Pereira",
        "Gonçalves",
        "Rodrigues",
        "Simões",
        "Conceição",
        "Magalhães",
        "Lopes",
        "Fernandes",
        "Brandão",
    ),
    "ES": (
        "García",
        "Fernández",
        "González",
        "Rodríguez",
        "López",
        "Martínez",
        "Sánchez",
        "Pérez",
        "Muñoz",
        "Jiménez",
        "Ibáñez",
        "Núñez",
    ),
    "FR": ("Dubois", "Lefèvre", "Moreau", "Girard"),
    "DE": ("Müller", "Schröder", "Weiß", "Becker"),
    "GB": ("Smith", "Jones", "Taylor", "Brown"),
    "US": ("Johnson", "Williams", "Miller", "Davis"),
}
PHONE_PREFIX = {
    "PT": "+3519",
    "ES": "+346",
    "FR": "+336",
    "DE": "+4917",
    "GB": "+4477",
    "US": "+121",
}
# The leading digits of a phone's eight drawn ones, made digits that real numbers of the
# country have there (phonenumbers validates them): mobile ranges, US area and exchange codes.
PHONE_LEADING_DIGITS = {
    "PT": ("1236",),
    "FR": ("0124578",),
    "GB": ("12345689",),
    "US": ("23456789", "23456789"),
}
EMAIL_DOMAIN = {"PT": "example.pt", "ES": "example.es"}
LANGUAGE = {"PT": "pt", "ES": "es", "FR": "fr", "DE": "de", "GB": "en", "US": "en"}
# Where a property's guests come from: mostly domestic, then neighbours and tourists.
GUEST_COUNTRY_WEIGHTS = {
    "PT": {"PT": 50, "ES": 12, "FR": 12, "DE": 8, "GB": 10, "US": 8},
    "ES": {"ES": 55, "PT": 8, "FR": 12, "DE": 8, "GB": 10, "US": 7},
}


@dataclass(frozen=True)
class DocumentTypes:
    """The words a property's front desk uses for identity documents."""

    national: tuple[str, ...]
    passport: str
    resident_foreigner: str | None = None  # Spain's NIE


DOCUMENT_TYPES = {
    "PT": DocumentTypes(national=("cartao_cidadao", "bilhete_identidade"), passport="passaporte"),
    "ES": DocumentTypes(national=("dni",), passport="pasaporte", resident_foreigner="nie"),
}
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
NIE_PREFIX_DIGIT = {"X": "0", "Y": "1", "Z": "2"}


def portuguese_nif(rng: random.Random) -> str:
    """A personal NIF (first digit 1-3) with its mod-11 check digit."""
    body = str(rng.randint(1, 3)) + "".join(str(rng.randint(0, 9)) for _ in range(7))
    return body + nif_check_digit(body)


def nif_check_digit(first_eight: str) -> str:
    remainder = sum(int(d) * w for d, w in zip(first_eight, range(9, 1, -1), strict=True)) % 11
    return "0" if remainder < 2 else str(11 - remainder)


def spanish_dni(rng: random.Random) -> str:
    number = rng.randint(10_000_000, 99_999_999)
    return f"{number:08d}{DNI_LETTERS[number % 23]}"


def spanish_nie(rng: random.Random) -> str:
    prefix = rng.choice("XYZ")
    digits = f"{rng.randint(0, 9_999_999):07d}"
    return prefix + digits + DNI_LETTERS[int(NIE_PREFIX_DIGIT[prefix] + digits) % 23]


def dni_or_nie_is_valid(value: str) -> bool:
    number = NIE_PREFIX_DIGIT.get(value[0], value[0]) + value[1:-1]
    return number.isdigit() and DNI_LETTERS[int(number) % 23] == value[-1]


def ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    phone: str
    country: str
    nif: str | None
    document_type: str
    document_number: str
    date_of_birth: str
    language: str


def make_person(rng: random.Random, property_country: str, serial: int) -> Person:
    weights = GUEST_COUNTRY_WEIGHTS[property_country]
    country = rng.choices(list(weights), weights=list(weights.values()))[0]
    first = rng.choice(FIRST_NAMES[country])
    surnames = [rng.choice(SURNAMES[country])]
    if country in ("PT", "ES"):  # Iberian names usually carry two surnames
        surnames.insert(0, rng.choice(SURNAMES[country]))
    name = " ".join([first, *surnames])
    nif, document_type, document_number = _tax_identity(rng, property_country, country)
    local_part = ascii_fold(f"{first}.{surnames[-1]}").lower().replace(" ", "")
    birth_year = rng.randint(1945, 2004)
    return Person(
        name=name,
        email=f"{local_part}{serial}@{EMAIL_DOMAIN.get(country, 'example.com')}",
        phone=_phone(country, [rng.randint(0, 9) for _ in range(8)]),
        country=country,
        nif=nif,
        document_type=document_type,
        document_number=document_number,
        date_of_birth=f"{birth_year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        language=LANGUAGE[country],
    )


def _phone(country: str, digits: list[int]) -> str:
    for position, allowed in enumerate(PHONE_LEADING_DIGITS.get(country, ())):
        digits[position] = int(allowed[digits[position] % len(allowed)])
    return PHONE_PREFIX[country] + "".join(map(str, digits))


def _tax_identity(
    rng: random.Random, property_country: str, guest_country: str
) -> tuple[str | None, str, str]:
    """(nif, document_type, document_number) as the property's front desk records them."""
    documents = DOCUMENT_TYPES[property_country]
    at_home = guest_country == property_country
    if guest_country == "PT":
        nif = portuguese_nif(rng)
        if at_home:
            return nif, rng.choice(documents.national), _citizen_card(rng)
        return nif, documents.passport, _passport(rng)
    if guest_country == "ES":
        dni = spanish_dni(rng)
        return (dni, "dni", dni) if at_home else (dni, documents.passport, _passport(rng))
    if documents.resident_foreigner and rng.random() < 0.2:  # foreigners living in Spain
        nie = spanish_nie(rng)
        return nie, documents.resident_foreigner, nie
    return None, documents.passport, _passport(rng)


def _citizen_card(rng: random.Random) -> str:
    return f"{rng.randint(10_000_000, 99_999_999)} {rng.randint(0, 9)} ZZ{rng.randint(0, 9)}"


def _passport(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(2))
    return letters + f"{rng.randint(0, 999_999):06d}"

"""Identifiers: Portuguese and Spanish tax ids and documents by their check digits, phones in E.164.

python-stdnum and phonenumbers do the work. Each distinct value is checked once
per batch; a value that fails is kept as received and flagged, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import phonenumbers
import pyarrow as pa
from stdnum.es import dni as es_dni
from stdnum.es import nie as es_nie
from stdnum.es import nif as es_nif
from stdnum.pt import nif as pt_nif

from hostpms_pipeline.hostpms.contract import property_country

# Tax ids by issuing country: Spain's NIF covers DNI and NIE numbers too.
TAX_ID_VALIDATORS: dict[str, Callable[[str], bool]] = {"PT": pt_nif.is_valid, "ES": es_nif.is_valid}
# Documents with check digits, by (country, unified document type).
DOCUMENT_VALIDATORS: dict[tuple[str, str], Callable[[str], bool]] = {
    ("ES", "national_id"): es_dni.is_valid,
    ("ES", "foreigner_id"): es_nie.is_valid,
}
_CACHE_SIZE = 1 << 16


@lru_cache(maxsize=_CACHE_SIZE)
def _phone(text: str, region: str) -> tuple[str, bool]:
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return text, False
    if not phonenumbers.is_valid_number(number):
        return text, False
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164), True


def _property_countries(hotel_ids: pa.Array | pa.ChunkedArray) -> list[str]:
    return [property_country(h) if h else "" for h in hotel_ids.to_pylist()]


def _phone_results(
    texts: pa.Array | pa.ChunkedArray, hotel_ids: pa.Array | pa.ChunkedArray
) -> list[tuple[str, bool] | None]:
    regions = _property_countries(hotel_ids)
    return [
        None if text is None else _phone(text, region)
        for text, region in zip(texts.to_pylist(), regions, strict=True)
    ]


def phones(texts: pa.Array | pa.ChunkedArray, hotel_ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Each phone in E.164, the property's country the default region; as received if invalid."""
    results = _phone_results(texts, hotel_ids)
    return pa.array([None if r is None else r[0] for r in results], pa.string())


def phones_valid(
    texts: pa.Array | pa.ChunkedArray, hotel_ids: pa.Array | pa.ChunkedArray
) -> pa.Array:
    """Whether each phone is a valid number (the E.164 form of a valid one parses the same)."""
    results = _phone_results(texts, hotel_ids)
    return pa.array([None if r is None else r[1] for r in results], pa.bool_())


def _issuing_countries(
    countries: pa.Array | pa.ChunkedArray | None, hotel_ids: pa.Array | pa.ChunkedArray
) -> list[str]:
    """The holder's country where it issues such ids (PT, ES), else the property's."""
    fallback = _property_countries(hotel_ids)
    if countries is None:
        return fallback
    own = [(c or "").strip().upper() for c in countries.to_pylist()]
    return [c if c in TAX_ID_VALIDATORS else f for c, f in zip(own, fallback, strict=True)]


def tax_ids_valid(
    texts: pa.Array | pa.ChunkedArray,
    countries: pa.Array | pa.ChunkedArray | None,
    hotel_ids: pa.Array | pa.ChunkedArray,
) -> pa.Array:
    """Whether each NIF passes its country's check digits; null when empty or not PT/ES."""
    issuers = _issuing_countries(countries, hotel_ids)
    return pa.array(
        [
            None
            if text is None or issuer not in TAX_ID_VALIDATORS
            else TAX_ID_VALIDATORS[issuer](text)
            for text, issuer in zip(texts.to_pylist(), issuers, strict=True)
        ],
        pa.bool_(),
    )


def documents_valid(
    texts: pa.Array | pa.ChunkedArray,
    document_types: pa.Array | pa.ChunkedArray,
    hotel_ids: pa.Array | pa.ChunkedArray,
) -> pa.Array:
    """Whether each document number passes its check digits; null for documents without them."""
    countries = _property_countries(hotel_ids)
    validators = [
        DOCUMENT_VALIDATORS.get((country, kind or ""))
        for country, kind in zip(countries, document_types.to_pylist(), strict=True)
    ]
    return pa.array(
        [
            None if text is None or check is None else check(text)
            for text, check in zip(texts.to_pylist(), validators, strict=True)
        ],
        pa.bool_(),
    )

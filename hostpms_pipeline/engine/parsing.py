"""Text columns → typed columns, in bulk; a malformed value becomes null (and may be rejected).

Money is exact to the cent: amounts are read from their decimal text and
rounded half away from zero (as PostgreSQL rounds ``numeric``), never through
binary floats. A numeric string (``"450.00"``) counts as a number.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hostpms_pipeline.entities.schema import MONEY, TIMESTAMP
from hostpms_pipeline.entities.spec import ParseKind
from hostpms_pipeline.hostpms.contract import parse_timestamp

# Active ISO 4217 codes (2024).
ISO_4217_CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
    KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD
    SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD
    XOF XPF YER ZAR ZMW ZWL""".split()
)
CURRENCY_CODES = pa.array(sorted(ISO_4217_CURRENCIES))

_DATE_PART = r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
DATE_TEXT = rf"^{_DATE_PART}$"
TIMESTAMP_TEXT = (
    rf"^{_DATE_PART}T([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{{1,6}})?(Z|[+-]\d{{2}}:\d{{2}})$"
)
DECIMAL_TEXT = r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"
INTEGER_TEXT = r"^-?\d{1,10}$"
_EXACT = pa.decimal128(38, 18)  # wide enough to hold any sane amount's text before rounding
_MONEY_LIMIT = Decimal(10) ** (MONEY.precision - MONEY.scale)
_CENT = Decimal(1).scaleb(-MONEY.scale)

Texts = pa.Array | pa.ChunkedArray


def _parse_text(
    texts: Texts, pattern: str, target: pa.DataType, parse_one: Callable[[str], Any]
) -> pa.Array:
    """``texts`` cast to ``target``; null where a text is null or malformed.

    The regex settles nearly all cases in bulk; the rare text of the right shape
    but an impossible value (``2024-02-30``) sends its column through ``parse_one``.
    """
    kept = wellformed(texts, pattern)
    try:
        return pc.cast(kept, target)
    except pa.ArrowInvalid:
        return pa.array([_or_none(parse_one, text) for text in kept.to_pylist()], target)


def wellformed(texts: Texts, pattern: str) -> Texts:
    return pc.if_else(pc.match_substring_regex(texts, pattern), texts, None)


def _or_none(parse_one: Callable[[str], Any], text: str | None) -> Any:
    if text is None:
        return None
    try:
        return parse_one(text)
    except ValueError:
        return None


def parse_timestamps(texts: Texts) -> pa.Array:
    return _parse_text(texts, TIMESTAMP_TEXT, TIMESTAMP, parse_timestamp)


def parse_dates(texts: Texts) -> pa.Array:
    return _parse_text(texts, DATE_TEXT, pa.date32(), date.fromisoformat)


def _int32(text: str) -> int:
    value = int(text)
    if not -(2**31) <= value < 2**31:
        raise ValueError("out of range")
    return value


def parse_integers(texts: Texts) -> pa.Array:
    return _parse_text(texts, INTEGER_TEXT, pa.int32(), _int32)


def parse_booleans(texts: Texts) -> pa.Array:
    """JSON's ``true`` and ``false``; anything else is null."""
    return pc.if_else(
        pc.equal(texts, "true"), True, pc.if_else(pc.equal(texts, "false"), False, None)
    )


def _round_to_cents(text: str) -> Decimal | None:
    try:
        amount = Decimal(text).quantize(_CENT, ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return amount if abs(amount) < _MONEY_LIMIT else None


def parse_money(texts: Texts) -> pa.Array:
    """Decimal text → numeric(12,2), rounded half away from zero; null if not a number or out of range."""
    try:  # Arrow refuses a cast that would lose a digit or overflow: then round below
        return pc.cast(wellformed(texts, DECIMAL_TEXT), MONEY)
    except pa.ArrowInvalid:
        pass
    exact = _parse_text(texts, DECIMAL_TEXT, _EXACT, Decimal)
    rounded = pc.round(exact, ndigits=MONEY.scale, round_mode="half_towards_infinity")
    in_range = pc.less(pc.abs(rounded), pa.scalar(_MONEY_LIMIT, _EXACT))
    try:
        return pc.if_else(in_range, rounded, None).cast(MONEY)
    except pa.ArrowInvalid:  # more decimals than _EXACT holds
        return pa.array([_or_none(_round_to_cents, t) for t in texts.to_pylist()], MONEY)


PARSERS: dict[ParseKind, Callable[[Texts], pa.Array]] = {
    "timestamp": parse_timestamps,
    "date": parse_dates,
    "money": parse_money,
    "integer": parse_integers,
    "boolean": parse_booleans,
}

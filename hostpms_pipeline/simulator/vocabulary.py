"""Per-country value tables (contract section 3), prices and taxes, as data.

Choices the contract leaves open, written down here and in docs/simulator.md:
- ``pricing.total`` is the accommodation price with IVA included; ``iva`` is the
  part of it that is tax: ``total * rate / (1 + rate)``, rounded to cents, with
  the accommodation rate (Portugal 6 %, Spain 10 %).
- The tourist tax is charged on top of the total, per guest per night, capped at
  the city's maximum nights (illustrative rates, not legal advice).
- A reservation's ``payment_method`` uses the unified English values, as in the
  TR-2 sample (``credit_card``); payment records use the local words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CountryVocabulary:
    reservation_status: Mapping[str, str]  # unified -> local
    channel: Mapping[str, str]
    room_type: Mapping[str, str]
    rate_plan: Mapping[str, str]
    room_status: Mapping[str, str]
    payment_method: Mapping[str, str]
    payment_status: Mapping[str, str]
    tourist_tax_field: str
    iva_rate: float
    special_requests: tuple[str, ...]


PORTUGUESE = CountryVocabulary(
    reservation_status={
        "confirmed": "confirmado",
        "cancelled": "cancelado",
        "checked_in": "check_in",
        "checked_out": "check_out",
        "no_show": "no_show",
    },
    channel={
        "direct": "direto",
        "booking_com": "booking_com",
        "expedia": "expedia",
        "airbnb": "airbnb",
        "agent": "agencia",
    },
    room_type={
        "double": "Quarto Duplo",
        "twin": "Quarto Twin",
        "suite": "Suite",
        "single": "Quarto Individual",
    },
    rate_plan={"flexible": "Flexível", "non_refundable": "Não Reembolsável"},
    room_status={
        "clean": "limpo",
        "dirty": "sujo",
        "occupied": "ocupado",
        "inspecting": "em_inspecao",
        "out_of_service": "fora_de_servico",
    },
    payment_method={
        "credit_card": "cartao_credito",
        "debit_card": "cartao_debito",
        "multibanco": "multibanco",
        "mbway": "mbway",
        "cash": "numerario",
        "bank_transfer": "transferencia",
    },
    payment_status={
        "paid": "pago",
        "pending": "pendente",
        "refunded": "reembolsado",
        "failed": "falhado",
    },
    tourist_tax_field="taxa_turistica",
    iva_rate=0.06,
    special_requests=(
        "Quarto silencioso",
        "Berço para bebé",
        "Andar alto",
        "Chegada tardia",
        "Pequeno-almoço sem glúten",
        "Vista rio",
    ),
)

SPANISH = CountryVocabulary(
    reservation_status={
        "confirmed": "confirmada",
        "cancelled": "cancelada",
        "checked_in": "check_in",
        "checked_out": "check_out",
        "no_show": "no_show",
    },
    channel={
        "direct": "directo",
        "booking_com": "booking_com",
        "expedia": "expedia",
        "airbnb": "airbnb",
        "agent": "agencia",
    },
    room_type={
        "double": "Habitación Doble",
        "twin": "Habitación Twin",
        "suite": "Suite",
        "single": "Habitación Individual",
    },
    rate_plan={"flexible": "Flexible", "non_refundable": "No Reembolsable"},
    room_status={
        "clean": "limpia",
        "dirty": "sucia",
        "occupied": "ocupada",
        "inspecting": "en_inspeccion",
        "out_of_service": "fuera_de_servicio",
    },
    payment_method={
        "credit_card": "tarjeta_credito",
        "debit_card": "tarjeta_debito",
        "bizum": "bizum",
        "cash": "efectivo",
        "bank_transfer": "transferencia",
    },
    payment_status={
        "paid": "pagado",
        "pending": "pendiente",
        "refunded": "reembolsado",
        "failed": "fallido",
    },
    tourist_tax_field="tasa_turistica",
    iva_rate=0.10,
    special_requests=(
        "Habitación tranquila",
        "Cuna para bebé",
        "Planta alta",
        "Llegada tardía",
        "Desayuno sin gluten",
        "Cama supletoria",
    ),
)

VOCABULARY = {"PT": PORTUGUESE, "ES": SPANISH}


@dataclass(frozen=True)
class TouristTax:
    per_guest_night: float
    max_nights: int


# City code (second part of the property id) -> tax; a country default otherwise.
TOURIST_TAX = {
    ("PT", "LIS"): TouristTax(4.00, 7),
    ("PT", "POR"): TouristTax(3.00, 7),
    ("PT", None): TouristTax(2.00, 7),
    ("ES", "BCN"): TouristTax(3.25, 7),
    ("ES", None): TouristTax(2.00, 7),
}

# Unified key -> weight; unified keys are the vocabulary's keys.
CHANNEL_WEIGHTS = {"booking_com": 40, "direct": 20, "expedia": 15, "airbnb": 15, "agent": 10}
ROOM_TYPE_WEIGHTS = {"double": 45, "twin": 25, "single": 20, "suite": 10}
RATE_PLAN_WEIGHTS = {"flexible": 70, "non_refundable": 30}
PAYMENT_METHOD_WEIGHTS = {
    "PT": {
        "credit_card": 40,
        "mbway": 20,
        "multibanco": 15,
        "debit_card": 10,
        "bank_transfer": 10,
        "cash": 5,
    },
    "ES": {"credit_card": 45, "bizum": 20, "debit_card": 15, "bank_transfer": 10, "cash": 10},
}
NIGHTLY_RATE_EUR = {"single": 70.0, "double": 95.0, "twin": 95.0, "suite": 180.0}
MAX_OCCUPANCY = {"single": 1, "double": 2, "twin": 2, "suite": 3}
NON_REFUNDABLE_DISCOUNT = 0.9
# Summer is high season; January and November are the quietest months.
MONTH_DEMAND = {
    1: 0.6,
    2: 0.7,
    3: 0.9,
    4: 1.0,
    5: 1.1,
    6: 1.3,
    7: 1.7,
    8: 1.8,
    9: 1.3,
    10: 1.0,
    11: 0.6,
    12: 0.9,
}
MONTH_PRICE = {
    1: 0.8,
    2: 0.8,
    3: 0.9,
    4: 1.0,
    5: 1.05,
    6: 1.25,
    7: 1.5,
    8: 1.6,
    9: 1.25,
    10: 1.0,
    11: 0.85,
    12: 1.1,
}


def tourist_tax(property_id: str) -> TouristTax:
    country, _, rest = property_id.partition("-")
    city = rest.split("-", 1)[0]
    return TOURIST_TAX.get((country, city)) or TOURIST_TAX[(country, None)]

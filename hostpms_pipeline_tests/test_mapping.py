"""Value tables of contract section 3, their tolerant lookup, and operator overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from hostpms_pipeline.engine.mapping import load_mapping_tables, map_values, normalise_key
from hostpms_pipeline.entities.schema import UNKNOWN

# Every row of the contract's tables: (field, Portuguese, Spanish, unified).
CONTRACT_ROWS = [
    ("status", "confirmado", "confirmada", "confirmed"),
    ("status", "cancelado", "cancelada", "cancelled"),
    ("status", "check_in", "check_in", "checked_in"),
    ("status", "check_out", "check_out", "checked_out"),
    ("status", "no_show", "no_show", "no_show"),
    ("channel", "direto", "directo", "direct"),
    ("channel", "booking_com", "booking_com", "ota"),
    ("channel", "expedia", "expedia", "ota"),
    ("channel", "airbnb", "airbnb", "ota"),
    ("channel", "agencia", "agencia", "agent"),
    ("room_type", "Quarto Duplo", "Habitación Doble", "Double Room"),
    ("room_type", "Quarto Twin", "Habitación Twin", "Twin Room"),
    ("room_type", "Suite", "Suite", "Suite"),
    ("room_type", "Quarto Individual", "Habitación Individual", "Single Room"),
    ("rate_plan", "Flexível", "Flexible", "flexible"),
    ("rate_plan", "Não Reembolsável", "No Reembolsable", "non_refundable"),
    ("room_status", "limpo", "limpia", "clean"),
    ("room_status", "sujo", "sucia", "dirty"),
    ("room_status", "ocupado", "ocupada", "occupied"),
    ("room_status", "em_inspecao", "en_inspeccion", "inspecting"),
    ("room_status", "fora_de_servico", "fuera_de_servicio", "out_of_service"),
    ("payment_method", "cartao_credito", "tarjeta_credito", "credit_card"),
    ("payment_method", "cartao_debito", "tarjeta_debito", "debit_card"),
    ("payment_method", "numerario", "efectivo", "cash"),
    ("payment_method", "transferencia", "transferencia", "bank_transfer"),
    ("payment_method", "multibanco", "multibanco", "multibanco"),
    ("payment_method", "mbway", "mbway", "mbway"),
    ("payment_method", "bizum", "bizum", "bizum"),
    ("payment_status", "pago", "pagado", "paid"),
    ("payment_status", "pendente", "pendiente", "pending"),
    ("payment_status", "reembolsado", "reembolsado", "refunded"),
    ("payment_status", "falhado", "fallido", "failed"),
]


@pytest.fixture(scope="module")
def tables():
    return load_mapping_tables()


def _map_one(value: str | None, field: str, tables) -> str:
    return map_values(pa.array([value], pa.string()), field, tables).to_pylist()[0]


@pytest.mark.parametrize(("field", "portuguese", "spanish", "unified"), CONTRACT_ROWS)
def test_contract_value_maps_in_both_languages(tables, field, portuguese, spanish, unified):
    assert _map_one(portuguese, field, tables) == unified
    assert _map_one(spanish, field, tables) == unified


@pytest.mark.parametrize(
    ("field", "variant", "unified"),
    [
        ("rate_plan", "Flexivel", "flexible"),
        ("rate_plan", "NAO REEMBOLSAVEL", "non_refundable"),
        ("rate_plan", "  não   reembolsável ", "non_refundable"),
        ("room_type", "Habitacion Doble", "Double Room"),
        ("room_type", " quarto duplo ", "Double Room"),
        ("room_type", "HABITACIÓN\tINDIVIDUAL", "Single Room"),
        ("status", "Confirmado", "confirmed"),
        ("channel", "Booking_Com", "ota"),
        ("room_status", "Em_Inspeção", "inspecting"),
    ],
)
def test_variants_of_case_spacing_and_accents_map_the_same(tables, field, variant, unified):
    assert _map_one(variant, field, tables) == unified


@pytest.mark.parametrize("value", ["tentative", "", "Quarto Triplo", None])
def test_unknown_and_null_values_become_unknown(tables, value):
    assert _map_one(value, "room_type", tables) == UNKNOWN


def test_map_values_keeps_every_row_in_place(tables):
    values = pa.chunked_array([["confirmado", "xyz", None], ["cancelada", "confirmado"]])
    mapped = map_values(values, "status", tables)
    assert mapped.to_pylist() == ["confirmed", UNKNOWN, UNKNOWN, "cancelled", "confirmed"]


def test_unknown_field_is_an_error(tables):
    with pytest.raises(KeyError, match="no_such_field"):
        map_values(pa.array(["x"]), "no_such_field", tables)


def test_normalise_key_strips_accents_case_and_extra_spaces():
    assert normalise_key("  Não   Reembolsável ") == "nao reembolsavel"


def test_override_file_extends_and_replaces_packaged_values(tmp_path: Path):
    override = tmp_path / "mapping.json"
    override.write_text(
        json.dumps(
            {
                "channel": {"Agência Online": "ota", "direto": "walk_in"},
                "document_type": {"dni": "id_card"},
            }
        ),
        encoding="utf-8",
    )
    tables = load_mapping_tables(override)
    assert _map_one("agencia online", "channel", tables) == "ota"
    assert _map_one("direto", "channel", tables) == "walk_in"
    assert _map_one("expedia", "channel", tables) == "ota"  # untouched packaged entry
    assert _map_one("DNI", "document_type", tables) == "id_card"


def test_override_file_of_the_wrong_shape_is_refused(tmp_path: Path):
    override = tmp_path / "mapping.json"
    override.write_text(json.dumps({"channel": ["direto"]}), encoding="utf-8")
    with pytest.raises(ValueError, match="channel"):
        load_mapping_tables(override)

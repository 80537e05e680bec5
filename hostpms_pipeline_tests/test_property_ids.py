"""Property ids are checked where they enter, by the rule the receiver applies to its path."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hostpms_pipeline.settings import Settings
from hostpms_pipeline.simulator import HostPMSSimulator, SimulatorConfig, run_in_background
from hostpms_pipeline.webhooks.outcomes import Outcome, Refusal
from hostpms_pipeline.webhooks.verification import check_path
from hostpms_pipeline_tests.fixtures.cli import run_hostpms
from hostpms_pipeline_tests.test_cli import count_bookings

HOSTILE = ["PT-LIS-001/../ES-MAD-001", "../ES-MAD-001", "PT LIS", "PT-LIS-001?x=1", "-PT", "a" * 65]


@pytest.mark.parametrize("property_id", HOSTILE)
def test_settings_refuse_what_the_receiver_refuses(property_id, monkeypatch):
    monkeypatch.setenv("HOSTPMS_PROPERTY_IDS", f"PT-LIS-001,{property_id}")
    with pytest.raises(ValidationError, match="HOSTPMS_PROPERTY_IDS: .* is not a property id"):
        Settings()
    with pytest.raises(Refusal) as refused:
        check_path(property_id, "reservation.updated")
    assert refused.value.outcome is Outcome.UNKNOWN_PROPERTY


def test_cli_refuses_a_hostile_property_before_any_request(cli_env):
    done, _ = run_hostpms("sync", "--property", "PT-LIS-001/../ES-MAD-001", env=cli_env)
    assert done.returncode == 2
    assert "is not a property id" in done.stderr
    done, _ = run_hostpms(
        "sync", env={**cli_env, "HOSTPMS_PROPERTY_IDS": "PT-LIS-001/../ES-MAD-001"}
    )
    assert done.returncode == 2
    assert done.stderr.startswith("hostpms: HOSTPMS_PROPERTY_IDS: 'PT-LIS-001/../ES-MAD-001'")
    assert len(done.stderr.splitlines()) == 1


def test_embedded_simulator_serves_only_its_configured_properties(tmp_path):
    settings = Settings(home=tmp_path, property_ids=("PT-NOPE-999",))
    config = SimulatorConfig.from_settings(settings, reservations_per_property=5)
    assert config.property_ids == ("PT-LIS-001", "PT-POR-002", "ES-MAD-001")
    with run_in_background(HostPMSSimulator(config)) as running:
        import httpx

        from hostpms_pipeline.hostpms import contract
        from hostpms_pipeline_tests.fixtures.simulator import simulator_token

        with httpx.Client(base_url=running.base_url) as api:
            token = simulator_token(api)
            answer = api.get(
                contract.collection_path("PT-NOPE-999", "reservations"),
                headers={"Authorization": f"Bearer {token}"},
            )
    assert answer.status_code == 404


def test_sync_of_a_typo_against_the_embedded_simulator_fails_and_loads_nothing(
    cli_env,
    pg_url,
    pg_schema,
):
    env = {**cli_env, "HOSTPMS_PROPERTY_IDS": "PT-NOPE-999"}
    for name in ("HOSTPMS_API_BASE_URL", "HOSTPMS_CLIENT_ID", "HOSTPMS_CLIENT_SECRET"):
        env.pop(name)  # the embedded simulator, as with nothing configured
    env["HOSTPMS_SIMULATOR_RESERVATIONS_PER_PROPERTY"] = "5"
    done, _ = run_hostpms("sync", env=env)
    assert done.returncode == 1
    assert (
        "PT-NOPE-999: FAILED: HostPMS does not know this property; check HOSTPMS_PROPERTY_IDS"
        in done.stdout
    )
    assert count_bookings(pg_url, pg_schema) == {}

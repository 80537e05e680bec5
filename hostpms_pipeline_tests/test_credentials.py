"""Per-property secrets: from AWS Secrets Manager (moto's server over HTTP) or from settings."""

import json
import logging
import stat

import boto3
import pytest
from pydantic import SecretStr

from hostpms_pipeline.hostpms.client import Credentials
from hostpms_pipeline.hostpms.credentials import MissingSecret, SecretProvider
from hostpms_pipeline.hostpms.secret_store import (
    LocalSecretsFile,
    SecretsManagerStore,
    UnsafeSecretsFile,
)
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, Settings
from hostpms_pipeline_tests.fixtures.s3 import TEST_ENV, TEST_REGION


@pytest.fixture
def secrets_manager(moto_endpoint_url, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint_url)
    for name, value in TEST_ENV.items():
        monkeypatch.setenv(name, value)
    return boto3.client("secretsmanager", region_name=TEST_REGION)


def test_oauth_credentials_and_webhook_secrets_come_from_secrets_manager(secrets_manager, caplog):
    secrets_manager.create_secret(
        Name="hostpms/PT-LIS-001/oauth-credentials",
        SecretString=json.dumps({"client_id": "lisbon-client", "client_secret": "s3cr3t-lisbon"}),
    )
    secrets_manager.create_secret(
        Name="hostpms/PT-LIS-001/webhook-secret", SecretString="whsec_new,whsec_old"
    )
    provider = SecretProvider(
        Settings(use_secrets_manager=True, api_base_url="https://example.test/v3")
    )
    with caplog.at_level(logging.DEBUG):
        credentials = provider.oauth_credentials("PT-LIS-001")
        secrets = provider.webhook_secrets("PT-LIS-001")
    assert (credentials.client_id, credentials.client_secret) == ("lisbon-client", "s3cr3t-lisbon")
    assert secrets == ["whsec_new", "whsec_old"]
    assert "s3cr3t-lisbon" not in repr(credentials)
    assert "s3cr3t" not in caplog.text and "whsec_" not in caplog.text


def test_a_missing_secret_is_a_clear_error(secrets_manager):
    provider = SecretProvider(
        Settings(use_secrets_manager=True, api_base_url="https://example.test/v3")
    )
    with pytest.raises(MissingSecret, match="hostpms/ES-MAD-001/oauth-credentials"):
        provider.oauth_credentials("ES-MAD-001")


def test_settings_are_used_when_secrets_manager_is_off():
    settings = Settings(
        api_base_url="https://example.test/v3",
        client_id="from-env",
        client_secret=SecretStr("env-secret"),
        webhook_secret=SecretStr("whsec_a"),
    )
    provider = SecretProvider(settings)
    assert provider.oauth_credentials("PT-LIS-001").client_id == "from-env"
    assert provider.webhook_secrets("PT-LIS-001") == ["whsec_a"]


def test_the_simulator_needs_no_configured_credentials_but_a_real_api_does():
    assert (
        SecretProvider(Settings()).oauth_credentials("PT-LIS-001").client_id == SIMULATOR_CLIENT_ID
    )
    with pytest.raises(MissingSecret, match="HOSTPMS_CLIENT_ID"):
        SecretProvider(Settings(api_base_url="https://api.hostpms.com/v3")).oauth_credentials(
            "PT-LIS-001"
        )


def test_property_ids_are_read_comma_separated(monkeypatch):
    monkeypatch.setenv("HOSTPMS_PROPERTY_IDS", " PT-LIS-001, ES-BCN-003 ,")
    assert Settings().property_ids == ("PT-LIS-001", "ES-BCN-003")


def test_connect_stores_in_secrets_manager_under_the_prd_names_and_disconnect_deletes(
    secrets_manager,
):
    store = SecretsManagerStore()
    store.store("PT-LIS-001", Credentials("lisbon-client", "first"), webhook_secret="whsec_one")
    store.store("PT-LIS-001", Credentials("lisbon-client", "second"), webhook_secret=None)  # again
    provider = SecretProvider(
        Settings(use_secrets_manager=True, api_base_url="https://example.test/v3")
    )
    assert provider.oauth_credentials("PT-LIS-001").client_secret == "second"
    assert provider.webhook_secrets("PT-LIS-001") == ["whsec_one"]
    assert store.delete("PT-LIS-001") == [
        "hostpms/PT-LIS-001/oauth-credentials",
        "hostpms/PT-LIS-001/webhook-secret",
    ]
    assert store.oauth_credentials("PT-LIS-001") is None
    assert store.delete("PT-LIS-001") == []  # twice is harmless


def test_the_local_secrets_file_is_owner_only_and_comes_before_settings(tmp_path):
    settings = Settings(
        home=tmp_path,
        api_base_url="https://example.test/v3",
        client_id="from-env",
        client_secret=SecretStr("env-secret"),
        webhook_secret=SecretStr("whsec_env"),
    )
    store = LocalSecretsFile(settings.resolved_secrets_file)
    store.store("PT-POR-002", Credentials("porto-client", "porto-secret"), "whsec_porto")
    assert stat.S_IMODE(settings.resolved_secrets_file.stat().st_mode) == 0o600
    provider = SecretProvider(settings)
    assert provider.oauth_credentials("PT-POR-002").client_id == "porto-client"
    assert provider.webhook_secrets("PT-POR-002") == ["whsec_porto"]
    assert provider.oauth_credentials("PT-LIS-001").client_id == "from-env"  # not connected
    assert len(store.delete("PT-POR-002")) == 2
    assert provider.webhook_secrets("PT-POR-002") == ["whsec_env"]
    settings.resolved_secrets_file.chmod(0o644)
    with pytest.raises(UnsafeSecretsFile, match="chmod 600"):
        provider.oauth_credentials("PT-POR-002")

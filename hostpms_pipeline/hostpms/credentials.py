"""Per-property secrets: AWS Secrets Manager when configured, else the local secrets file
that ``hostpms connect`` writes (``secret_store``), else settings.

Secret names follow the PRD (``hostpms/{propertyId}/oauth-credentials`` and
``hostpms/{propertyId}/webhook-secret``). Values are cached for a few minutes so a
rotation is picked up without a restart. Nothing here logs a secret's value.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import Credentials
from hostpms_pipeline.hostpms.secret_store import LocalSecretsFile
from hostpms_pipeline.settings import SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET, Settings

CACHE_SECONDS = 300
# botocore logs whole response bodies at DEBUG, secret values included: never below INFO.
for _logger in ("botocore", "boto3"):
    logging.getLogger(_logger).setLevel(max(logging.getLogger(_logger).level, logging.INFO))


class MissingSecret(Exception):
    """A secret the connector needs is configured nowhere."""


@dataclass
class SecretsManagerReader:
    """Reads and briefly caches secrets from AWS Secrets Manager."""

    client: Any = None
    _cache: dict[str, tuple[float, str]] = field(default_factory=dict)

    def read(self, name: str) -> str:
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        if self.client is None:
            import boto3  # here: a third of a second to import, needed only on AWS

            self.client = boto3.client("secretsmanager")
        try:
            value = self.client.get_secret_value(SecretId=name)["SecretString"]
        except self.client.exceptions.ResourceNotFoundException:
            raise MissingSecret(f"secret {name!r} does not exist in Secrets Manager") from None
        self._cache[name] = (time.monotonic(), value)
        return value


@dataclass
class SecretProvider:
    settings: Settings
    secrets_manager: SecretsManagerReader = field(default_factory=SecretsManagerReader)

    def oauth_credentials(self, property_id: str) -> Credentials:
        if self.settings.use_secrets_manager:
            raw = self.secrets_manager.read(
                contract.OAUTH_SECRET_NAME.format(property_id=property_id)
            )
            value = json.loads(raw)
            return Credentials(value["client_id"], value["client_secret"])
        stored = self._local().oauth_credentials(property_id)
        if stored is not None:
            return stored
        if self.settings.client_id and self.settings.client_secret:
            return Credentials(
                self.settings.client_id, self.settings.client_secret.get_secret_value()
            )
        if self.settings.uses_simulator:
            return Credentials(SIMULATOR_CLIENT_ID, SIMULATOR_CLIENT_SECRET)
        raise MissingSecret(
            "no HostPMS credentials: set HOSTPMS_CLIENT_ID and HOSTPMS_CLIENT_SECRET, "
            "or HOSTPMS_USE_SECRETS_MANAGER=true"
        )

    def _local(self) -> LocalSecretsFile:
        return LocalSecretsFile(self.settings.resolved_secrets_file)

    def webhook_secrets(self, property_id: str) -> list[str]:
        """Every secret currently valid for the property (several while rotating)."""
        if self.settings.use_secrets_manager:
            raw = self.secrets_manager.read(
                contract.WEBHOOK_SECRET_NAME.format(property_id=property_id)
            )
            return _parse_webhook_secret(raw)
        stored = self._local().webhook_secrets(property_id)
        if stored:
            return stored
        if self.settings.webhook_secret:
            return _parse_webhook_secret(self.settings.webhook_secret.get_secret_value())
        raise MissingSecret(f"no webhook secret configured for property {property_id!r}")


def _parse_webhook_secret(raw: str) -> list[str]:
    """A plain secret, a comma-separated list, or JSON ``{"secret": ...}`` / ``{"secrets": [...]}``."""
    text = raw.strip()
    if text.startswith("{"):
        value = json.loads(text)
        secrets = value.get("secrets") or [value["secret"]]
    else:
        secrets = text.split(",")
    return [secret.strip() for secret in secrets if secret.strip()]

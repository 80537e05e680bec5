"""Where ``hostpms connect`` keeps a property's secrets, and ``hostpms disconnect`` deletes them.

AWS Secrets Manager when ``HOSTPMS_USE_SECRETS_MANAGER`` is on, under the PRD's names
(``hostpms/{propertyId}/oauth-credentials``, ``hostpms/{propertyId}/webhook-secret``);
otherwise one local JSON file (``HOSTPMS_SECRETS_FILE``, default
``{HOSTPMS_HOME}/secrets.json``) that only its owner may read or write (mode 0600).
``credentials.SecretProvider`` reads both. Nothing here logs a secret's value.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hostpms_pipeline.hostpms import contract
from hostpms_pipeline.hostpms.client import Credentials
from hostpms_pipeline.settings import Settings

OWNER_ONLY = 0o600


class UnsafeSecretsFile(Exception):
    """The local secrets file can be read by others than its owner: refused, never read."""


class SecretStore(Protocol):
    def oauth_credentials(self, property_id: str) -> Credentials | None: ...

    def webhook_secrets(self, property_id: str) -> list[str] | None: ...

    def store(
        self, property_id: str, credentials: Credentials, webhook_secret: str | None
    ) -> None: ...

    def delete(self, property_id: str) -> list[str]: ...


@dataclass
class LocalSecretsFile:
    """``{property_id: {"client_id", "client_secret", "webhook_secret"}}`` in one 0600 file."""

    path: Path

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            return {}
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UnsafeSecretsFile(
                f"{self.path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"run `chmod 600 {self.path}`"
            )
        return json.loads(self.path.read_text(encoding="utf-8") or "{}")

    @contextmanager
    def _editing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The file's content to change in place, written back atomically under a lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(f".{self.path.name}.lock")
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            content = self._read()
            yield content
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
            with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                json.dump(content, out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, OWNER_ONLY)  # whatever the umask said
            os.replace(temporary, self.path)

    def oauth_credentials(self, property_id: str) -> Credentials | None:
        entry = self._read().get(property_id)
        if not entry or "client_id" not in entry:
            return None
        return Credentials(entry["client_id"], entry["client_secret"])

    def webhook_secrets(self, property_id: str) -> list[str] | None:
        entry = self._read().get(property_id) or {}
        secret = entry.get("webhook_secret")
        return [secret] if secret else None

    def store(self, property_id: str, credentials: Credentials, webhook_secret: str | None) -> None:
        with self._editing() as content:
            entry = content.setdefault(property_id, {})
            entry["client_id"] = credentials.client_id
            entry["client_secret"] = credentials.client_secret
            if webhook_secret is not None:
                entry["webhook_secret"] = webhook_secret

    def delete(self, property_id: str) -> list[str]:
        if not self.path.exists():
            return []
        with self._editing() as content:
            entry = content.pop(property_id, None) or {}
        deleted = []
        if "client_id" in entry:
            deleted.append(f"{self.path}: {property_id} oauth credentials")
        if "webhook_secret" in entry:
            deleted.append(f"{self.path}: {property_id} webhook secret")
        return deleted


@dataclass
class SecretsManagerStore:
    """The PRD's secret names in AWS Secrets Manager."""

    client: Any = field(default=None)

    def _client(self) -> Any:
        if self.client is None:
            import boto3  # slow to import: only when Secrets Manager is used

            self.client = boto3.client("secretsmanager")
        return self.client

    def _read(self, name: str) -> str | None:
        client = self._client()
        try:
            return client.get_secret_value(SecretId=name)["SecretString"]
        except client.exceptions.ResourceNotFoundException:
            return None

    def oauth_credentials(self, property_id: str) -> Credentials | None:
        raw = self._read(contract.OAUTH_SECRET_NAME.format(property_id=property_id))
        if raw is None:
            return None
        value = json.loads(raw)
        return Credentials(value["client_id"], value["client_secret"])

    def webhook_secrets(self, property_id: str) -> list[str] | None:
        raw = self._read(contract.WEBHOOK_SECRET_NAME.format(property_id=property_id))
        return [json.loads(raw)["secret"]] if raw else None

    def _put(self, name: str, value: str) -> None:
        client = self._client()
        try:
            client.put_secret_value(SecretId=name, SecretString=value)
        except client.exceptions.ResourceNotFoundException:
            client.create_secret(Name=name, SecretString=value)

    def store(self, property_id: str, credentials: Credentials, webhook_secret: str | None) -> None:
        oauth = {"client_id": credentials.client_id, "client_secret": credentials.client_secret}
        self._put(contract.OAUTH_SECRET_NAME.format(property_id=property_id), json.dumps(oauth))
        if webhook_secret is not None:
            self._put(
                contract.WEBHOOK_SECRET_NAME.format(property_id=property_id),
                json.dumps({"secret": webhook_secret}),
            )

    def delete(self, property_id: str) -> list[str]:
        client, deleted = self._client(), []
        for template in (contract.OAUTH_SECRET_NAME, contract.WEBHOOK_SECRET_NAME):
            name = template.format(property_id=property_id)
            try:
                client.describe_secret(SecretId=name)
                # No recovery window: a disconnected property's secrets must stop working now.
                client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
                deleted.append(name)
            except client.exceptions.ResourceNotFoundException:
                pass
        return deleted


def open_secret_store(settings: Settings) -> SecretStore:
    if settings.use_secrets_manager:
        return SecretsManagerStore()
    return LocalSecretsFile(settings.resolved_secrets_file)

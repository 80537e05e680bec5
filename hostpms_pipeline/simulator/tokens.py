"""OAuth client-credentials tokens: issued, expiring, revocable."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping


class TokenStore:
    def __init__(
        self,
        clients: Mapping[str, str],
        lifetime_seconds: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self._clients = dict(clients)
        self.lifetime = lifetime_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}  # token -> (client_id, expires_at)
        self.issued = 0

    def issue(self, client_id: str, client_secret: str) -> str | None:
        """A new token, or None when the credentials are wrong."""
        expected = self._clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, client_secret):
            return None
        token = secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = (client_id, self._monotonic() + self.lifetime)
            self.issued += 1
        return token

    def client_for(self, token: str) -> str | None:
        """The client a live token belongs to; None if unknown, expired or revoked."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                return None
            client_id, expires_at = entry
            if self._monotonic() >= expires_at:
                del self._tokens[token]
                return None
            return client_id

    def revoke_all(self) -> int:
        with self._lock:
            revoked = len(self._tokens)
            self._tokens.clear()
        return revoked

"""The keyed hash (HMAC-SHA256) that stands for a person's identifier, and its key.

An identifier is normalised first, so that every spelling of it hashes the same:

- ``email``: trimmed, lower case;
- ``nif``: upper case, letters and digits only, without a leading ``PT``/``ES`` VAT prefix;
- ``phone``: E.164, parsed with the property's country as default region (as the guests
  table stores it); a number that does not parse keeps its digits;
- ``guest_id``: ``{property_id}|{guest_id}`` (HostPMS guest ids are per hotel).

The key comes from ``HOSTPMS_GDPR_KEY``, else from Secrets Manager (``hostpms/gdpr-key``)
when ``HOSTPMS_USE_SECRETS_MANAGER`` is on, else from ``{HOSTPMS_HOME}/gdpr.key``, generated
once (32 random bytes, hex, mode 0600). It is never logged. Changing it makes every stored
hash (suppression list, audit log, Parquet ``guest_key``) unmatchable: keep it.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from hostpms_pipeline.entities.spec import EntitySpec, IdentifierKind
from hostpms_pipeline.hostpms.contract import property_country
from hostpms_pipeline.settings import Settings, get_settings

if TYPE_CHECKING:
    import pyarrow as pa

GDPR_KEY_SECRET_NAME = "hostpms/gdpr-key"
KEY_FILE_NAME = "gdpr.key"
_NOT_ALNUM = re.compile(r"[^0-9A-Z]")
_NOT_DIGIT = re.compile(r"[^0-9]")
# A Portuguese or Spanish number already in E.164 form (neither country has a trunk prefix):
# parsing would give it back unchanged, valid or not, and costs ~40 µs a number.
_E164_FORM = re.compile(r"\+(351|34)[1-9][0-9]{8}")
_CACHE = 1 << 16
# Kinds whose normal form is the same whatever the property (no country rules).
PROPERTY_FREE_KINDS = frozenset({"email", "nif"})


def load_key(settings: Settings) -> bytes:
    """The HMAC key: the setting, Secrets Manager, or the embedded key file (made once)."""
    if settings.gdpr_key is not None:
        return settings.gdpr_key.get_secret_value().encode()
    if settings.use_secrets_manager:
        from hostpms_pipeline.hostpms.credentials import SecretsManagerReader

        return SecretsManagerReader().read(GDPR_KEY_SECRET_NAME).strip().encode()
    return _key_file(settings.home.absolute() / KEY_FILE_NAME)


def _key_file(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32))
            file.flush()
            os.fsync(file.fileno())
    key = path.read_text().strip()
    if not key:  # another process is writing it right now
        raise RuntimeError(f"the GDPR key file {path} is empty")
    return key.encode()


@lru_cache(maxsize=4)
def _hasher_for(key: bytes) -> Hasher:
    return Hasher(key)


def current_hasher(settings: Settings | None = None) -> Hasher:
    """The hasher for the configured key (loaded once per process and key)."""
    return _hasher_for(load_key(settings or get_settings()))


@lru_cache(maxsize=_CACHE)
def normalise(kind: IdentifierKind, value: str, property_id: str | None) -> str | None:
    """The identifier in the one form its hash is made from; None when there is nothing."""
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None
    if kind == "email":
        return text.lower()
    if kind == "nif":
        nif = _NOT_ALNUM.sub("", text.upper())
        if len(nif) == 11 and nif[:2] in ("PT", "ES"):
            nif = nif[2:]
        return nif or None
    if kind == "phone":
        if _E164_FORM.fullmatch(text):
            return text
        # Here, as Arrow below: the polling that lands pages imports this module, and a sync
        # that finds nothing new starts without phonenumbers and Arrow.
        from hostpms_pipeline.engine.identifiers import _phone

        region = property_country(property_id) if property_id else ""
        e164, valid = _phone(text, region)
        return (
            e164
            if valid
            else ("+" + _NOT_DIGIT.sub("", text) if _NOT_DIGIT.sub("", text) else None)
        )
    if kind == "guest_id":
        return f"{property_id or ''}|{text}"
    raise ValueError(f"unknown identifier kind {kind!r}")


class Hasher:
    """HMAC-SHA256 of normalised identifiers, as lowercase hex."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("the GDPR key must be at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:  # never the key
        return "Hasher(<key>)"

    def of_normalised(self, kind: IdentifierKind, normalised: str) -> str:
        message = f"{kind}\x1f{normalised}".encode()
        return hmac.digest(self._key, message, "sha256").hex()  # by name: OpenSSL's one-shot HMAC

    def of(self, kind: IdentifierKind, value: object, property_id: str | None) -> str | None:
        if value is None:
            return None
        normalised = normalise(kind, str(value), property_id)
        return None if normalised is None else self.of_normalised(kind, normalised)

    def column(
        self,
        kind: IdentifierKind,
        values: pa.Array | pa.ChunkedArray,
        hotel_ids: pa.Array | pa.ChunkedArray,
    ) -> pa.Array:
        """The hash of each value (null stays null); each distinct value hashed once (per
        hotel for the kinds whose normal form depends on the property's country)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if kind in PROPERTY_FREE_KINDS:
            keys = values
            split = None
        else:
            keys = pc.binary_join_element_wise(hotel_ids, values, "\x1f")
            split = "\x1f"
        unique = pc.unique(keys)
        # A column holds up to a million distinct values: the loop is kept lean, and the
        # single-value cache of ``normalise`` is bypassed (it would only churn).
        normal = normalise.__wrapped__
        keyed = hmac.new(self._key, digestmod="sha256")  # copied per value: the key's pads once
        prefix = f"{kind}\x1f"
        hashes: list[str | None] = []
        append = hashes.append
        for item in unique.to_pylist():
            if item is None:
                append(None)
                continue
            if split is None:
                normalised = normal(kind, item, None)
            else:
                hotel, _, value = item.partition(split)
                normalised = normal(kind, value, hotel)
            if normalised is None:
                append(None)
                continue
            mac = keyed.copy()
            mac.update((prefix + normalised).encode())
            append(mac.hexdigest())
        return pc.take(pa.array(hashes, pa.string()), pc.index_in(keys, value_set=unique))


def guest_keys(spec: EntitySpec, rows: pa.Table, hasher: Hasher) -> pa.Array:
    """The pseudonymous ``guest_key`` of each row: the hash of its ``spec.guest_key`` column."""
    kind = spec.guest_key_kind
    assert kind is not None and spec.guest_key is not None
    return hasher.column(kind, rows[spec.guest_key], rows["hotel_id"])

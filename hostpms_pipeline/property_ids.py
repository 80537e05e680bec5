"""The one rule for a property id, wherever one enters: settings, ``--property``, webhook paths.

Property ids become URL path segments, storage keys, secret names and partition keys,
so only plain identifiers pass: ``PT-LIS-001/../ES-MAD-001`` would otherwise make the
HTTP client normalise the request to another property's URL.
"""

from __future__ import annotations

import re

PROPERTY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
RULE = "letters, digits, '-' and '_', at most 64, starting with a letter or digit"


class InvalidPropertyId(ValueError):
    """A property id that breaks the rule; the message is one line and names the rule."""


def is_valid(property_id: str) -> bool:
    return bool(PROPERTY_ID_PATTERN.fullmatch(property_id))


def check(property_id: str, *, source: str = "HOSTPMS_PROPERTY_IDS") -> str:
    """``property_id`` unchanged, or :class:`InvalidPropertyId` naming where it came from."""
    if not is_valid(property_id):
        # repr() of a bounded prefix: an id is no secret, but the line stays one line.
        raise InvalidPropertyId(f"{source}: {property_id[:80]!r} is not a property id ({RULE})")
    return property_id

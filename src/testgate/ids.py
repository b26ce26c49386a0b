"""Identifiers: time-sortable ULIDs (Crockford base32), so keyset pages follow creation order."""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def new_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits."""
    value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars)).lower()


def is_slug(value: str) -> bool:
    """DNS-label-like: lowercase letters, digits and inner dashes, 1-63 characters."""
    return bool(SLUG.match(value))

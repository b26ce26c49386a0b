"""Identifiers: time-sortable ULIDs (Crockford base32), so keyset pages follow creation order."""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lowercase
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # the two digits of every 10-bit value
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def new_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits."""
    return ulid((time.time_ns() // 1_000_000) << 80 | secrets.randbits(80))


def ulid(value: int) -> str:
    """The 26 base32 digits of a 128-bit ``value`` (130 bits, the first two zero), two digits at a time."""
    p = _PAIRS
    return (
        p[value >> 120 & 1023] + p[value >> 110 & 1023] + p[value >> 100 & 1023] + p[value >> 90 & 1023]
        + p[value >> 80 & 1023] + p[value >> 70 & 1023] + p[value >> 60 & 1023] + p[value >> 50 & 1023]
        + p[value >> 40 & 1023] + p[value >> 30 & 1023] + p[value >> 20 & 1023] + p[value >> 10 & 1023]
        + p[value & 1023]
    )  # fmt: skip


def is_slug(value: str) -> bool:
    """DNS-label-like: lowercase letters, digits and inner dashes, 1-63 characters."""
    return bool(SLUG.match(value))

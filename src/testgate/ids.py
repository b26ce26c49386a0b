"""Identifiers: time-sortable ULIDs (Crockford base32), so keyset pages follow creation order."""

from __future__ import annotations

import base64
import re
import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base32, lowercase
# base64's RFC 4648 base32 spells the same 5-bit groups with other letters.
_FROM_RFC4648 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET)
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def new_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits."""
    return ulid((time.time_ns() // 1_000_000) << 80 | secrets.randbits(80))


def ulid(value: int) -> str:
    """The 26 base32 digits of a 128-bit ``value`` (130 bits, the first two zero).

    Encoded as 20 bytes, 160 bits: 32 digits of which the first six are the padding's zeros.
    """
    return base64.b32encode(value.to_bytes(20, "big")).decode()[6:].translate(_FROM_RFC4648)


def is_slug(value: str) -> bool:
    """DNS-label-like: lowercase letters, digits and inner dashes, 1-63 characters."""
    return bool(SLUG.match(value))

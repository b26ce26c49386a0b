"""Keyset pagination: opaque cursors over a strictly ordered key, so every page is an index seek."""

from __future__ import annotations

import base64
import json
from typing import Any

from testgate.errors import InvalidInput

MAX_PAGE = 500
MAX_KEY = 2**63 - 1  # the largest value of a 64-bit integer column (SQLite's INTEGER, PostgreSQL's BIGINT)
INVALID = "the cursor is not valid (pass back next_cursor unchanged)"


def encode_cursor(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int = 1) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise InvalidInput(INVALID) from None
    if not isinstance(key, list) or len(key) != arity:
        raise InvalidInput(INVALID)
    return key


def decode_int_cursor(cursor: str) -> int:
    """The key of a cursor over one integer column; anything else (a string, a number no column holds) is
    refused as not valid rather than reaching the database."""
    (key,) = decode_cursor(cursor)
    if type(key) is not int or not -MAX_KEY - 1 <= key <= MAX_KEY:
        raise InvalidInput(INVALID)
    return key


def clamp_limit(limit: int | None, default: int = 50) -> int:
    if limit is None:
        return default
    return max(1, min(limit, MAX_PAGE))

"""Keyset pagination: opaque cursors over a strictly ordered key, so every page is an index seek."""

from __future__ import annotations

import base64
import json
from typing import Any

from testgate.errors import InvalidInput

MAX_PAGE = 500
MAX_KEY = 2**63 - 1  # the largest value of a 64-bit integer column (SQLite's INTEGER, PostgreSQL's BIGINT)
INVALID = "the cursor is not valid (pass back next_cursor unchanged, to the list that gave it)"
MAX_TEXT_KEY = 200


def encode_cursor(kind: str, key: int | str) -> str:
    """The cursor after ``key`` in list ``kind``: ``decode_cursor`` of another list refuses it."""
    raw = json.dumps([kind, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> str:
    """The string key of a cursor of list ``kind``; a cursor of another list, or anything not made by
    ``encode_cursor``, is refused as not valid rather than silently starting over."""
    key = _decode(cursor, kind)
    if type(key) is not str or not 0 < len(key) <= MAX_TEXT_KEY or "\x00" in key:
        raise InvalidInput(INVALID)
    return key


def decode_int_cursor(cursor: str, kind: str) -> int:
    """The key of a cursor over one integer column (ids and seqs: never negative); anything else (a
    string, a number no column holds) is refused as not valid rather than reaching the database."""
    key = _decode(cursor, kind)
    if type(key) is not int or not 0 <= key <= MAX_KEY:
        raise InvalidInput(INVALID)
    return key


def _decode(cursor: str, kind: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise InvalidInput(INVALID) from None
    if not isinstance(decoded, list) or len(decoded) != 2 or decoded[0] != kind:
        raise InvalidInput(INVALID)
    return decoded[1]


def clamp_limit(limit: int | None, default: int = 50) -> int:
    if limit is None:
        return default
    return max(1, min(limit, MAX_PAGE))

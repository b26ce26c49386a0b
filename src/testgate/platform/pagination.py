"""Keyset pagination: opaque cursors over a strictly ordered key, so every page is an index seek."""

from __future__ import annotations

import base64
import json
from typing import Any

from testgate.errors import InvalidInput

MAX_PAGE = 500


def encode_cursor(*key: Any) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int = 1) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        raise InvalidInput("the cursor is not valid (pass back next_cursor unchanged)") from None
    if not isinstance(key, list) or len(key) != arity:
        raise InvalidInput("the cursor is not valid (pass back next_cursor unchanged)")
    return key


def clamp_limit(limit: int | None, default: int = 50) -> int:
    if limit is None:
        return default
    return max(1, min(limit, MAX_PAGE))

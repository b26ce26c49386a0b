"""The shapes settings must have, checked when they are read: URL schemes, log levels, Fernet keys.

A setting of the wrong shape stops every command with exit code 2 naming it (``testgate.config``),
instead of starting and failing later with a traceback, or quietly doing something else.
"""

from __future__ import annotations

import base64
import binascii

from pydantic import SecretStr

# The brokers testgate's Celery executor is built and tested on (memory://: one process, for tests).
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", "redis", "rediss", "redis+socket", "sentinel", "memory")
REDIS_SCHEMES = ("redis", "rediss", "unix")
DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "sqlite", "sqlite+aiosqlite")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}  # what Python's logging and Celery accept too


def url_of(value: SecretStr | None, schemes: tuple[str, ...], kind: str) -> SecretStr | None:
    """A secret URL (it may hold a password, so a refusal names only its scheme); empty is unset."""
    text = value.get_secret_value().strip() if value is not None else ""
    if not text:
        return None
    scheme, sep, _ = text.partition("://")
    if not sep or scheme.lower() not in schemes:
        shown = f"the scheme {scheme.lower()!r}" if sep and len(scheme) <= 20 else "no scheme"
        raise ValueError(f"must be {kind} ({', '.join(s + '://' for s in schemes)}); it has {shown}")
    return SecretStr(text)


def is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (ValueError, binascii.Error):
        return False

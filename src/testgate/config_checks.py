"""The shapes settings must have, checked when they are read: URL schemes, log levels, Fernet keys, and
the secret files a setting may be read from.

A setting of the wrong shape stops every command with exit code 2 naming it (``testgate.config``),
instead of starting and failing later with a traceback, or quietly doing something else.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

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


class SettingError(ValueError):
    """A setting that cannot be read at all (its secret file), named by its environment variable."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(f"{variable}: {reason}")
        self.variable = variable
        self.reason = reason


def secret_file(variable: str, path: str) -> str:
    """A secret file's text without its final newline; a missing, unreadable or empty file is an error (an empty
    one is a secret that was not mounted: taking it as unset would start on the embedded database, say)."""
    try:
        text = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingError(variable, f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SettingError(variable, f"{path} is not UTF-8 text") from None
    if not text.strip():
        raise SettingError(variable, f"{path} is empty")
    return text

"""Turning console form fields into operation arguments (what people type, as the operations take it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from testgate.errors import FieldError, InvalidInput


def pairs(text: str, field: str) -> dict[str, str]:
    """``key=value`` pairs separated by commas or new lines (``team=qa, tier=smoke``)."""
    found: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{field}: write key=value pairs", errors=[FieldError(field, f"{item.strip()!r}")])
        found[key.strip()] = value.strip()
    return found


def pairs_text(values: Mapping[str, str]) -> str:
    """The inverse of ``pairs``, for a form's initial value."""
    return ", ".join(f"{k}={v}" for k, v in values.items())


def prefixed(fields: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The non-empty fields named ``prefix<name>``, by name (an empty field means: the default)."""
    return {k.removeprefix(prefix): v for k, v in fields.items() if k.startswith(prefix) and v != ""}


def optional(fields: Mapping[str, str], *names: str) -> dict[str, str]:
    """The named fields that were filled in."""
    return {name: fields[name].strip() for name in names if fields.get(name, "").strip()}


def utc_time(text: str, field: str) -> str | None:
    """A ``datetime-local`` value (read as UTC) or an ISO 8601 time, as ISO 8601 with an offset."""
    if not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{field}: not a date and time", errors=[FieldError(field, repr(text))]) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def problems(exc: InvalidInput) -> dict[str, list[str]]:
    """The problems of a refused form by field (``config.x``, ``tags``); ``""`` holds those of no one field."""
    found: dict[str, list[str]] = {}
    for error in exc.errors:
        field = "tags" if error.path.split(".")[0] == "tags" else error.path
        found.setdefault(field, []).append(error.message if field == error.path else str(error))
    return found

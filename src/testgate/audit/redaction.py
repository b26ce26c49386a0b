"""Keeping secrets out of logs and audit records.

Three layers, shared by the structlog processor ``redact_event`` and by the recorder:

- values under secret-named keys (``authorization``, ``cookie``, ``password``, ``*_token``, ...) are
  replaced whole;
- token-shaped strings anywhere (testgate API and refresh tokens, JWTs, ``Bearer`` credentials,
  passwords in URLs) keep at most a short, non-secret prefix;
- values registered at run time with ``register_secret`` (a workflow's sensitive config) are masked
  wherever they appear.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, MutableMapping
from typing import Any

from structlog.processors import format_exc_info

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "x_api_key",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "refresh_token",
        "access_token",
        "id_token",
        "private_key",
    }
)
_SECRET_SUFFIXES = ("_password", "_secret", "_token")
# Registered values shorter than this would mask ordinary words all over the logs.
MIN_SECRET_LENGTH = 4
MAX_REGISTERED = 4096

# Patterns are generous on purpose: a truncated or mangled token is still a leak.
_TOKENS = re.compile(
    r"(?<![0-9A-Za-z])(?P<api>tgp_[0-9A-Za-z]{16,})"
    r"|(?<![0-9A-Za-z])(?P<refresh>tgr_[0-9A-Za-z_-]+)"
    r"|(?P<jwt>eyJ[\w-]+\.[\w-]+\.[\w-]*)"
    r"|(?P<scheme>\b(?i:bearer))\s+(?P<credential>[^\s\"',;]+)"
    r"|(?P<userinfo>://[^/\s:@]+:)[^/\s@]+@",
    re.ASCII,
)


def secret_key(key: str) -> bool:
    """True for keys whose values are secrets by name (``Authorization``, ``client_secret``, ...)."""
    normalized = key.lower().replace("-", "_")
    return normalized in SECRET_KEYS or normalized.endswith(_SECRET_SUFFIXES)


def _mask(match: re.Match[str]) -> str:
    kind = match.lastgroup
    text = match.group(0)
    if kind == "api":
        return text[:8] + REDACTED  # tgp_ + 4 characters: the prefix testgate itself shows for a token
    if kind == "refresh":
        return text[: 4 + min(4, (len(text) - 4) // 4)] + REDACTED
    if kind == "jwt":
        return "eyJ" + REDACTED
    if kind == "credential":
        return f"{match.group('scheme')} {REDACTED}"
    return f"{match.group('userinfo')}{REDACTED}@"


class _Registry:
    """A bounded, process-wide set of sensitive values (newest kept), matched as one regex."""

    def __init__(self) -> None:
        self._values: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        with self._lock:
            self._values[value] = None
            self._values.move_to_end(value)
            while len(self._values) > MAX_REGISTERED:
                self._values.popitem(last=False)
            self._pattern = None

    def discard(self, value: str) -> None:
        with self._lock:
            if self._values.pop(value, 0) is None:
                self._pattern = None

    def pattern(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is not None or not self._values:
            return pattern  # built, or nothing registered: no lock needed to read either
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so a secret that contains another is masked whole.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            return self._pattern


_registry = _Registry()


def register_secret(value: str) -> None:
    """Mask ``value`` in every log line and audit record from now on (until ``forget_secret``)."""
    if len(value) >= MIN_SECRET_LENGTH:
        _registry.add(value)


def forget_secret(value: str) -> None:
    """Stop masking ``value`` (its execution is over)."""
    _registry.discard(value)


def scrub_text(text: str) -> str:
    """``text`` with registered secrets and token-shaped strings masked."""
    registered = _registry.pattern()
    if registered is not None:
        text = registered.sub(REDACTED, text)
    # Every token shape starts with one of these (in any case, to be generous): a text with none of them
    # needs no pass of the pattern, which costs more than these searches.
    lowered = text.lower()
    if "tgp_" in lowered or "tgr_" in lowered or "eyj" in lowered or "bearer" in lowered or "://" in lowered:
        return _TOKENS.sub(_mask, text)
    return text


def scrub(value: Any, *, keys: bool = True) -> Any:
    """A copy of ``value`` with every string scrubbed and, with ``keys``, secret-named entries replaced."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if keys and isinstance(k, str) and secret_key(k) else scrub(v, keys=keys)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, keys=keys) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    # Renderers would print repr() of anything else, so scrub that text instead.
    return scrub_text(repr(value))


def redact_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets in every field of a log event, exceptions included.

    It MUST run after every processor that adds text and before the renderer. Exceptions are rendered
    to text here first, so that their messages and tracebacks are scrubbed too.
    """
    if event_dict.get("exc_info"):
        event_dict = format_exc_info(logger, method_name, event_dict)
    for key, value in list(event_dict.items()):
        if key.startswith("_"):
            continue  # structlog's own bookkeeping (the LogRecord), not rendered
        event_dict[key] = REDACTED if secret_key(key) else scrub(value)
    return event_dict

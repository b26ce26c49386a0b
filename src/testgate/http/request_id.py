"""Request ids: taken from ``X-Request-ID`` when it is safe to echo, otherwise generated (``testgate.http.observe``
assigns them and returns them on every response)."""

from __future__ import annotations

import re
import secrets

from starlette.requests import Request
from starlette.types import Scope

from testgate.http.headers import header

HEADER = "X-Request-ID"
NAME = HEADER.lower().encode()  # as ASGI gives header names
# Echoed into logs, audit events (64 characters) and headers: a conservative alphabet keeps all three safe.
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def accept_or_generate(value: str | None) -> str:
    """The caller's request id if it is safe to reuse, else a fresh one."""
    if value and _SAFE.match(value):
        return value
    return secrets.token_hex(16)  # 32 hex characters like uuid4().hex, all 128 bits random, cheaper to make


def request_id_of(request: Request) -> str:
    """The id the middleware assigned to ``request`` (a fresh one if the middleware did not run)."""
    value = getattr(request.state, "request_id", None)
    if isinstance(value, str):
        return value
    value = accept_or_generate(request.headers.get(HEADER))
    request.state.request_id = value
    return value


def scope_request_id(scope: Scope) -> str:
    """The id of the request ``scope`` describes, assigned on first use."""
    state = scope.setdefault("state", {})
    value = state.get("request_id")
    if not isinstance(value, str):
        value = state["request_id"] = accept_or_generate(header(scope, NAME))
    return value

"""Where a request came from, as operation calls and audit events record it.

Every entry point that builds a ``Call`` or an audit event from a request (REST, the console, the
one-time-link pages, OAuth, the MCP guard, the panic guard) takes these three fields from here, so the
request id, the peer's address and the user agent are read, and cut, one way.
"""

from __future__ import annotations

from typing import TypedDict

from starlette.types import Scope

from testgate.http.headers import header
from testgate.http.request_id import scope_request_id

MAX_USER_AGENT = 400  # the audit column's width


class Origin(TypedDict):
    """Keyword arguments of ``Call`` and ``recorder.Event`` alike."""

    request_id: str
    source_address: str | None
    user_agent: str | None


def origin_of(scope: Scope) -> Origin:
    """The request id the front door assigned (one is assigned if it did not run), the peer's address as
    the server saw it (a trusted proxy's forwarded one, ``testgate.http.forwarded``) and the user agent."""
    client = scope.get("client")
    agent = header(scope, b"user-agent")
    return {
        "request_id": scope_request_id(scope),
        "source_address": client[0] if client else None,
        "user_agent": agent[:MAX_USER_AGENT] if agent else None,
    }

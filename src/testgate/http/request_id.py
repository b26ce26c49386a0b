"""Request ids: taken from ``X-Request-ID`` when it is safe to echo, otherwise generated; returned on every response."""

from __future__ import annotations

import re
import uuid

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
# Echoed into logs, audit events (64 characters) and headers: a conservative alphabet keeps all three safe.
_SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def accept_or_generate(value: str | None) -> str:
    """The caller's request id if it is safe to reuse, else a fresh one."""
    if value and _SAFE.match(value):
        return value
    return uuid.uuid4().hex


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
        value = state["request_id"] = accept_or_generate(Headers(scope=scope).get(HEADER))
    return value


class RequestIdMiddleware:
    """Assign each HTTP request an id, bind it to structlog's context and return it as ``X-Request-ID``.

    Installed twice (an outer stack and an inner app), the inner one keeps the id the outer one assigned.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "request_id" in scope.get("state", {}):
            await self.app(scope, receive, send)
            return
        request_id = scope_request_id(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        # bind + reset by token: what ``bound_contextvars`` does, without copying the whole context first.
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**bound)

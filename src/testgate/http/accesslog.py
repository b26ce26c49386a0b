"""One structured log line per HTTP request: method, path (never the query: it may hold a token), status, time."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.http import paths
from testgate.http.observe import run_observed

log = structlog.get_logger("testgate.http")


class AccessLog:
    """Log ``request`` events after each response (the request id is bound by the middleware before this one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await run_observed(self.app, scope, receive, send, _log, unanswered=0)


def _log(scope: Scope, status: int, seconds: float) -> None:
    client = scope.get("client")
    # Probes arrive every few seconds from the orchestrator: recorded, but below the default level.
    emit = log.debug if scope.get("path") in paths.PROBES else log.info
    emit(
        "request",
        method=scope.get("method"),
        path=scope.get("path"),
        status=status or None,
        duration_ms=round(seconds * 1000, 1),
        client=client[0] if client else None,
    )

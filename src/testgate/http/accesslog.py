"""One structured log line per HTTP request: method, path (never the query: it may hold a token), status, time."""

from __future__ import annotations

import logging

import structlog
from starlette.types import Scope

from testgate.http import paths

log = structlog.get_logger("testgate.http")


def line(scope: Scope, status: int, seconds: float) -> None:
    """Log the ``request`` event of a request that ended (``status`` 0: no response began; the caller,
    ``testgate.http.observe``, has bound the request id)."""
    # Probes arrive every few seconds from the orchestrator: recorded, but below the default level.
    probe = scope.get("path") in paths.PROBES
    enabled = getattr(log, "isEnabledFor", None)  # logging routed through the stdlib (``logconfig``)
    if enabled is not None and not enabled(logging.DEBUG if probe else logging.INFO):
        return  # not even the line's fields are worth building (every request, at WARNING)
    client = scope.get("client")
    emit = log.debug if probe else log.info
    emit(
        "request",
        method=scope.get("method"),
        path=scope.get("path"),
        status=status or None,
        duration_ms=round(seconds * 1000, 1),
        client=client[0] if client else None,
    )

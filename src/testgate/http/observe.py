"""Watching a response go by: its status and how long the app took, for the access log and metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


async def run_observed(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    done: Callable[[Scope, int, float], None],
    *,
    unanswered: int,
) -> None:
    """Run ``app``; then ``done(scope, status, seconds)``, also when it raised (``unanswered`` if no response began)."""
    started = time.perf_counter()
    status = unanswered

    async def observe(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        await send(message)

    try:
        await app(scope, receive, observe)
    finally:
        done(scope, status, time.perf_counter() - started)

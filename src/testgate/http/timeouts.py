"""Request timeouts: a response must start within ``http.request_timeout`` seconds, or the request gets 504.

The deadline covers the time until the response starts, not the whole response: streams (MCP GET streams,
legacy SSE, an audit export) start at once and then run under their own bounds. So do MCP tool calls that
outlast the SDK's SSE deferral (15 s in mcp 2.3: the call switches to an SSE stream with pings), which is
why a timeout below ~20 s cuts long tool calls. ``wait_for_executions`` over REST answers only at the end,
bounded by its own ``timeout`` (at most 900 s), and is exempt.
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testgate.http import paths, replies

log = structlog.get_logger("testgate.http")


class Timeout:
    """Cancel a request whose response has not started after ``seconds``, and answer 504."""

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or paths.is_long_poll(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False
        # asyncio's own timeout, not an anyio cancel scope: a timer handle instead of the scope's
        # bookkeeping on every request (the app's task groups pass the cancellation on either way).
        deadline = asyncio.timeout(self.seconds)

        async def starting(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and not started:
                started = True
                deadline.reschedule(None)  # from here the route's own bounds govern
            await send(message)

        try:
            async with deadline:
                await self.app(scope, receive, starting)
        except TimeoutError:
            if not deadline.expired():
                raise  # not this deadline's: the app's own
        if deadline.expired() and not started:
            log.warning("request timed out", path=scope["path"], seconds=self.seconds)
            detail = f"no response within {self.seconds:g} s; the request was cancelled and may have partly run"
            await replies.refusal(scope, 504, "timeout", "Timeout", detail)(scope, receive, send)

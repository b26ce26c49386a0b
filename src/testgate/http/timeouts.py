"""Request timeouts: a response must start within ``http.request_timeout`` seconds, or the request gets 504.

The deadline covers the time until the response starts, not the whole response: streams (MCP GET streams,
legacy SSE, an audit export) start at once and then run under their own bounds. So do MCP tool calls that
outlast the SDK's SSE deferral (15 s in mcp 2.3: the call switches to an SSE stream with pings), which is
why a timeout below ~20 s cuts long tool calls. ``wait_for_executions`` over REST answers only at the end,
bounded by its own ``timeout`` (at most 900 s), and is exempt.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from testgate.http import paths, replies
from testgate.http.observe import Progress, progress_of

log = structlog.get_logger("testgate.http")

MAX_TICK = 1.0  # seconds between looks at the waiting requests, at most (a tenth of the timeout when shorter)


class _Waiting:
    """A request whose response has not started: when its time is up, and whether it was cancelled for that."""

    __slots__ = ("cancelling", "deadline", "expired", "progress")

    def __init__(self, deadline: float, progress: Progress, cancelling: int) -> None:
        self.deadline, self.progress, self.cancelling = deadline, progress, cancelling
        self.expired = False


class Timeout:
    """Cancel a request whose response has not started after ``seconds``, and answer 504.

    One watcher task per event loop looks at the waiting requests every ``tick`` (a tenth of ``seconds``,
    at most ``MAX_TICK``) and cancels those past their deadline, the way ``asyncio.timeout`` would: a
    request costs a dict entry instead of a timer scheduled and cancelled on the loop (and a ``send``
    wrapper, when ``Observe`` keeps the response's progress). A deadline is kept to within one tick.
    """

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self.app, self.seconds = app, seconds
        self.tick = min(MAX_TICK, seconds / 10)
        self._waiting: dict[asyncio.Task[Any], _Waiting] = {}
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or paths.is_long_poll(scope["path"]):
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None, "an ASGI request runs in a task"
        progress, send = progress_of(scope, send)
        loop = asyncio.get_running_loop()
        waiting = self._waiting[task] = _Waiting(loop.time() + self.seconds, progress, task.cancelling())
        watcher = self._watcher
        if watcher is None or watcher.done() or watcher.get_loop() is not loop:
            self._watcher = loop.create_task(self._watch(), name="testgate-request-timeouts")
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            # Only this deadline's cancellation is answered here; anyone else's goes on (asyncio.timeout's rule).
            if not waiting.expired or task.uncancel() > waiting.cancelling:
                raise
        else:
            if waiting.expired:
                task.uncancel()  # cancelled, but the app was done before it noticed
        finally:
            self._waiting.pop(task, None)
        if waiting.expired and not progress.status:
            log.warning("request timed out", path=scope["path"], seconds=self.seconds)
            detail = f"no response within {self.seconds:g} s; the request was cancelled and may have partly run"
            await replies.refusal(scope, 504, "timeout", "Timeout", detail)(scope, receive, send)

    async def _watch(self) -> None:
        """Cancel each request past its deadline whose response has not started; end once none is waiting."""
        waiting, loop = self._waiting, asyncio.get_running_loop()
        while waiting:
            await asyncio.sleep(self.tick)
            now = loop.time()
            for task, request in list(waiting.items()):
                if request.progress.status:
                    del waiting[task]  # the response started: from here the route's own bounds govern
                elif request.deadline <= now:
                    del waiting[task]
                    request.expired = True
                    task.cancel()

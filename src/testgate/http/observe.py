"""The outermost watcher of every HTTP request: its id, its access-log line and its metrics, in one layer.

Each was a middleware of its own, and each wrapped ``send`` to see the response go by: three wrappers
called for every message of every response (an SSE answer is several). One wrapper does all three:

- the request id (``testgate.http.request_id``): accepted or generated, bound to every log line of the
  request and returned as ``X-Request-ID`` on the response;
- the access log (``testgate.http.accesslog``): one line per request once it ends, whatever answered it;
- the metrics (``testgate.http.metrics``): the response counted by route template and status, and timed.
"""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testgate.http import accesslog, metrics
from testgate.http.request_id import HEADER, NAME, scope_request_id

PROGRESS = "testgate.progress"  # the scope key of the request's ``Progress``


class Progress:
    """How far the answer to a request has got: ``status`` once its response started, 0 before.

    ``Observe`` keeps one in the scope (``PROGRESS``), so the layers inside it (panic guard, timeout) need
    not wrap ``send`` again to learn whether a response began.
    """

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0


def progress_of(scope: Scope, send: Send) -> tuple[Progress, Send]:
    """The request's ``Progress`` and the ``send`` to use: ``Observe``'s when it is outside, else a
    ``send`` wrapped to keep a progress of its own (a layer used without ``Observe``)."""
    progress = scope.get(PROGRESS)
    if isinstance(progress, Progress):
        return progress, send
    progress = Progress()

    async def tracked(message: Message) -> None:
        if message["type"] == "http.response.start" and not progress.status:
            progress.status = int(message["status"])
        await send(message)

    return progress, tracked


class Observe:
    """Give each HTTP request an id, then log it and count it once it ends (also when the app raised)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope_request_id(scope)
        progress = scope[PROGRESS] = Progress()

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                progress.status = int(message["status"])
                raw = message.get("headers")
                if type(raw) is list and NAME not in dict(raw):
                    raw.append((NAME, request_id.encode("latin-1")))  # what MutableHeaders does, cheaper
                else:
                    MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        # bind + reset by token: what ``bound_contextvars`` does, without copying the whole context first.
        bound = structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            await self.app(scope, receive, observe)
        finally:
            seconds = time.perf_counter() - started
            status = progress.status
            accesslog.line(scope, status, seconds)
            metrics.count_response(scope, status or 500, seconds)  # an app that raised answered nothing: 500
            structlog.contextvars.reset_contextvars(**bound)

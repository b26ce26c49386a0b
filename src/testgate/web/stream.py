"""Live logs as Server-Sent Events: ``GET /ui/{org}/{env}/executions/{id}/logs/stream?after=<seq>``.

The stream is authorized (and audited) by dispatching ``execution.get`` first; then it follows the log
(``platform.logs.follow``) and sends one ``line`` event per line, its ``id`` the line's seq, so a
reconnecting ``EventSource`` resumes after ``Last-Event-ID``. An ``end`` event says the execution finished.
A comment every ``KEEPALIVE`` seconds keeps idle proxies from closing the connection.

A stream may last as long as the execution runs, so the person's right to it is checked again every
``RECHECK`` seconds, as a new request would be (the session, the membership, the environment grant):
once they have signed out or lost access, the stream ends (with ``end``: the page reloads, into the
sign-in form or a 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse

from testgate.errors import NotFound, Unauthenticated
from testgate.operations.models import ExecutionDetail
from testgate.platform import logs
from testgate.platform.context import Platform
from testgate.platform.logs import LogLine
from testgate.web.context import Console, console_of
from testgate.web.routing import ConsoleRoute

router = APIRouter(prefix="/ui/{org}/{env}", route_class=ConsoleRoute, include_in_schema=False)
Con = Annotated[Console, Depends(console_of)]
KEEPALIVE = 15.0
RECHECK = 5.0  # seconds between checks that the person may still follow the log


async def paced(lines: AsyncIterator[LogLine], every: float) -> AsyncGenerator[LogLine | None, None]:
    """``lines`` as they come, with a ``None`` whenever ``every`` seconds pass without one."""

    async def following() -> LogLine:
        return await anext(lines)

    pending: asyncio.Task[LogLine] | None = None
    try:
        while True:
            pending = pending or asyncio.ensure_future(following())
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield None
                continue
            task, pending = pending, None
            try:
                yield task.result()
            except StopAsyncIteration:
                return
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


def event(line: LogLine) -> bytes:
    data = json.dumps({"seq": line.seq, "step": line.step, "text": line.text}, ensure_ascii=False)
    return f"id: {line.seq}\nevent: line\ndata: {data}\n\n".encode()


async def events(
    platform: Platform, execution_id: str, after: int, allowed: Callable[[], Awaitable[bool]]
) -> AsyncIterator[bytes]:
    """The SSE body: ``retry`` advice, the lines after ``after``, then ``end`` (also once ``allowed`` says no)."""
    yield b"retry: 3000\n\n"
    lines = logs.follow(platform, execution_id, after)
    ticks = paced(lines, RECHECK)
    checked = quiet = time.monotonic()
    try:
        async for line in ticks:
            now = time.monotonic()
            if now - checked >= RECHECK:
                if not await allowed():
                    break
                checked = now
            if line is not None:
                quiet = now
                yield event(line)
            elif now - quiet >= KEEPALIVE:
                quiet = now
                yield b": keepalive\n\n"
    except NotFound:
        pass  # deleted while followed: nothing more will come
    finally:
        await ticks.aclose()  # first: it may be waiting for the next line
        close = getattr(lines, "aclose", None)  # an async generator: end it now, not when collected
        if close is not None:
            await close()
    yield b"event: end\ndata: {}\n\n"


@router.get("/executions/{id}/logs/stream")
async def stream(
    c: Con, request: Request, id: Annotated[str, Path(max_length=100)], after: Annotated[int, Query(ge=0)] = 0
) -> StreamingResponse:
    """Follow an execution's log as it is written, after line ``after`` (or ``Last-Event-ID``)."""
    detail = await c.run(ExecutionDetail, "execution.get", {"id": id})
    resumed = request.headers.get("last-event-id", "")
    start = max(after, int(resumed)) if resumed.isdigit() and len(resumed) < 12 else after
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    org, env = request.path_params["org"], request.path_params["env"]

    async def allowed() -> bool:
        """Whether this request would still be let in: signed in, a member, the environment visible."""
        try:
            await console_of(request, org, env)
        except (Unauthenticated, NotFound):
            return False
        return True

    body = events(c.platform, detail.id, start, allowed)
    return StreamingResponse(body, media_type="text/event-stream", headers=headers)

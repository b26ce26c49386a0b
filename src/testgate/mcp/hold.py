"""Answers held at the door until the audit events of their calls are committed.

A read's audit event is committed before its answer goes out, and if it cannot be written the caller
gets an error instead of the answer (fail closed). Waiting for the commit inside the tool call puts it
after everything that follows the handler: the end of the read's transaction (a round trip on
PostgreSQL), the tool result, the SDK's encoding. On the streamable HTTP endpoint the wait moves to the
last moment instead: ``dispatch`` hands the event's task over (``Call.hold``) and returns, and this
request's ``send`` waits for every event handed over before it lets a response byte out.

An event that failed turns the answer to its JSON-RPC request into the tool error the call would have
answered had it waited itself (``AuditFailure``): whatever the answer carried never leaves.

Only the streamable HTTP endpoint holds answers: there the answer to a request always goes out on the
request's own response. (On the legacy SSE transport it goes out on another request's stream.)
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp_types import RequestId
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testgate.errors import AuditFailure
from testgate.mcp.results import failure
from testgate.operations.context import AnswerHold

SCOPE_KEY = "testgate.mcp.hold"


class HeldAnswers:
    """Wraps the streamable HTTP endpoint: each request's answers wait for the events handed over."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        door = Door(send)
        scope[SCOPE_KEY] = door
        await self.app(scope, receive, door.send)


def hold_of(ctx: ServerRequestContext[Any, Any]) -> AnswerHold | None:
    """Where the tool call of ``ctx`` may hand its event over; None where answers are not held (stdio, SSE)."""
    request = ctx.request
    door = request.scope.get(SCOPE_KEY) if isinstance(request, Request) else None
    if not isinstance(door, Door) or ctx.request_id is None:
        return None
    return door.hold(ctx.request_id)


class Door:
    """One HTTP request's ``send``, holding its response back while events handed over are uncommitted."""

    __slots__ = ("_failed", "_finished", "_pending", "_send", "_start")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._pending: list[tuple[RequestId, asyncio.Task[None]]] = []
        self._failed: dict[RequestId, AuditFailure] = {}
        self._start: Message | None = None
        self._finished = False

    def hold(self, request_id: RequestId) -> AnswerHold:
        """The hold for the answer to JSON-RPC request ``request_id``."""

        def hold(event: asyncio.Task[None]) -> bool:
            if self._finished:
                return False  # the response is complete: nothing here can wait any more
            event.add_done_callback(_retrieved)
            self._pending.append((request_id, event))
            return True

        return hold

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start" and self._pending:
            self._start = message  # its Content-Length may have to change
            return
        if kind == "http.response.body":
            if self._pending:
                await self._settle()
            if self._failed:
                message = self._withheld(message)
            if self._start is not None:
                start, self._start = self._start, None
                await self._send(start)
            self._finished = not message.get("more_body", False)
        await self._send(message)

    async def _settle(self) -> None:
        # An event leaves the list only once done: a send running meanwhile (an SSE keep-alive ping from
        # another task) waits for it too instead of passing an answer that is not yet cleared.
        while self._pending:
            request_id, event = self._pending[0]
            try:
                # Shielded: a client hanging up must not cancel the event (it is written all the same).
                await asyncio.shield(event)
            except AuditFailure as exc:
                self._failed[request_id] = exc
            if self._pending and self._pending[0][1] is event:
                del self._pending[0]

    def _withheld(self, message: Message) -> Message:
        """``message`` with each answer to a request whose event failed replaced by the error."""
        body = bytes(message.get("body", b""))
        if body.startswith(b"{"):
            replaced = self._replaced(body)
        else:  # Server-sent events: the JSON-RPC messages are the data lines.
            lines = body.splitlines(keepends=True)
            replaced = b"".join(
                b"data: " + self._replaced(line[6:].rstrip(b"\r\n")) + line[len(line.rstrip(b"\r\n")) :]
                if line.startswith(b"data: ")
                else line
                for line in lines
            )
        if replaced == body:
            return message
        if self._start is not None:
            self._start = _with_length(self._start, len(replaced))
        return {**message, "body": replaced}

    def _replaced(self, data: bytes) -> bytes:
        try:
            message = json.loads(data)
        except ValueError:
            return data
        answer = isinstance(message, dict) and "result" in message
        error = self._failed.get(message["id"]) if answer and message.get("id") is not None else None
        if error is None:
            return data
        result = failure(error).model_dump(mode="json", by_alias=True, exclude_none=True)
        return json.dumps({**message, "result": result}, separators=(",", ":")).encode()


def _with_length(start: Message, length: int) -> Message:
    headers = [(name, value) for name, value in start.get("headers", []) if name.lower() != b"content-length"]
    if len(headers) < len(start.get("headers", [])):
        headers.append((b"content-length", str(length).encode()))
    return {**start, "headers": headers}


def _retrieved(event: asyncio.Task[None]) -> None:
    """Mark an event's failure seen even when no answer waited for it (``dispatch`` logged it already)."""
    if not event.cancelled():
        event.exception()

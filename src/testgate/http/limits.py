"""Request body size limits, enforced before authentication and without buffering the body.

A declared ``Content-Length`` over the limit is refused at once; one within it is what the server delivers,
so it is not counted again. A chunked body is counted as it streams:
past the limit this middleware answers 413 itself, tells the application the client went away, and
drops whatever the application still tries to send.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from testgate.http import paths, replies
from testgate.http.headers import header

MiB = 1024 * 1024


def upload_limit(max_upload_bytes: int) -> int:
    """The bound of routes that carry result files: JSON escaping or multipart framing can double a file."""
    return 2 * max_upload_bytes


class BodyLimit:
    """413 for bodies over ``limit`` (``uploads`` on MCP and REST environment routes)."""

    def __init__(self, app: ASGIApp, *, limit: int, uploads: int) -> None:
        self.app, self.limit, self.uploads = app, limit, uploads

    def limit_of(self, path: str) -> int:
        """The largest body a request to ``path`` may send."""
        return self.uploads if paths.takes_uploads(path) else self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope["path"])
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await _too_large(scope, limit)(scope, receive, send)
                return
            if header(scope, b"transfer-encoding") is None:
                # The server delivers a body of exactly the declared length (RFC 9112 §6.3; what follows it
                # on the connection is the next request), so there is nothing left to count.
                await self.app(scope, receive, send)
                return
        await self.app(scope, *_counting(scope, receive, send, limit))


def _too_large(scope: Scope, limit: int) -> Response:
    detail = f"the request body is larger than {limit} bytes"
    return replies.refusal(scope, 413, "limit-exceeded", "Limit exceeded", detail, limit=limit)


def _counting(scope: Scope, receive: Receive, send: Send, limit: int) -> tuple[Receive, Send]:
    """``receive`` and ``send`` wrapped so a body growing past ``limit`` ends the exchange with 413."""
    received = 0
    started = refused = False

    async def counted() -> Message:
        nonlocal received, refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                refused = True
                if not started:
                    await _too_large(scope, limit)(scope, receive, send)
                return {"type": "http.disconnect"}
        return message

    async def guarded(message: Message) -> None:
        nonlocal started
        if refused:
            return  # the 413 went out; the application's late answer has nowhere to go
        if message["type"] == "http.response.start":
            started = True
        await send(message)

    return counted, guarded

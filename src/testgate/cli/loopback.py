"""The browser's way back to ``testgate login``: a one-shot HTTP listener on the loopback interface that
takes the authorization answer (RFC 8252 §7.3) and shows the person a short page."""

from __future__ import annotations

import asyncio
import hmac
import socket
from urllib.parse import parse_qsl, urlsplit

PAGE = "<!doctype html><title>testgate</title><p>{}</p><p>You can close this tab.</p>"


def _page(status: int, text: str) -> bytes:
    """A small HTML answer for the browser, closing the connection."""
    body = PAGE.format(text).encode()
    head = f"HTTP/1.1 {status} -\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"Cache-Control: no-store\r\nConnection: close\r\n\r\n" + body


class Loopback:
    """A one-shot HTTP listener on 127.0.0.1 that waits for the authorization answer (RFC 8252 §7.3).

    It owns its sockets outright (no ``asyncio.Server``), so closing it closes every connection a browser
    opened, speculative preconnects included.
    """

    def __init__(self, state: str) -> None:
        self.state = state
        self.answer: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.connections: set[socket.socket] = set()
        self.tasks: set[asyncio.Future[None]] = set()

    async def start(self) -> str:
        """Start accepting; the redirect URI to use."""
        asyncio.get_running_loop().add_reader(self.listener.fileno(), self._accept)
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/callback"

    async def close(self) -> None:
        """Stop listening and close every connection."""
        asyncio.get_running_loop().remove_reader(self.listener.fileno())
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for connection in (*self.connections, self.listener):
            connection.close()

    def _accept(self) -> None:
        # Synchronous, so every accepted socket is in ``connections`` before anything can cancel anything.
        try:
            connection, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        connection.setblocking(False)
        self.connections.add(connection)
        self.tasks.add(asyncio.ensure_future(self._serve(connection)))

    async def _serve(self, connection: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        head = b""
        try:
            async with asyncio.timeout(10):
                while (
                    b"\r\n\r\n" not in head and len(head) < 8192 and (chunk := await loop.sock_recv(connection, 4096))
                ):
                    head += chunk
            target = head.split(b" ", 2)[1].decode("ascii", "replace")
            await loop.sock_sendall(connection, _page(*self._receive(target)))
        except (OSError, TimeoutError, IndexError):
            return
        finally:
            self.connections.discard(connection)
            connection.close()

    def _receive(self, target: str) -> tuple[int, str]:
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query))
        if parts.path != "/callback" or self.answer.done():
            return 404, "Nothing here."
        # RFC 6749 §10.12: an answer without this attempt's state is someone else's; keep waiting.
        if not hmac.compare_digest(params.get("state", ""), self.state):
            return 400, "This answer does not belong to the sign-in in progress."
        self.answer.set_result(params)
        if "error" in params:
            return 400, "Access was not granted; see the terminal."
        # The code is redeemed after this page is sent, and that can still fail: the terminal has the outcome.
        return 200, "testgate has the answer; the terminal says whether you are logged in."

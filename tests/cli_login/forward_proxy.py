"""A loopback HTTP forward proxy (RFC 9110 §7.1 absolute-form requests) that records what passes through.

One request per connection: the request goes upstream with ``Connection: close``, the answer (SSE streams
included) comes back as it arrives, and both connections close when the upstream one does.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
CHUNK = 1 << 16


class ForwardProxy:
    """``async with ForwardProxy() as proxy``: ``proxy.url`` for HTTP_PROXY, ``proxy.seen`` (method, URL)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ForwardProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.ensure_future(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            self.seen.append((method, target))
            parts = urlsplit(target)
            kept = [
                h for h in lines[1:] if h and h.split(":")[0].strip().lower() not in ("connection", "proxy-connection")
            ]
            length = next((int(h.split(":")[1]) for h in kept if h.lower().startswith("content-length:")), 0)
            body = await reader.readexactly(length)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            up_reader, upstream = await asyncio.open_connection(parts.hostname, parts.port or 80)
            upstream.write(
                "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close", "", ""]).encode("latin-1")
            )
            upstream.write(body)
            await upstream.drain()
            while chunk := await up_reader.read(CHUNK):
                writer.write(chunk)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            for stream in (upstream, writer):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(ConnectionError):
                        await stream.wait_closed()

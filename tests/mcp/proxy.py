"""A loopback HTTP/1.1 proxy that adds headers to every request and passes everything else through.

Test suites that send no credentials (the MCP conformance suite, a load generator) reach the
authenticated endpoint through it:

    async with HeaderProxy(("127.0.0.1", port), {"Authorization": f"Bearer {token}"}) as proxy:
        url = proxy.base + "/organizations/acme/environments/dev/mcp"

It works on bytes, not on parsed messages: request heads get the extra headers (replacing any of the
same name) and are otherwise forwarded verbatim - the client's ``Host`` and ``Origin`` included, so a
DNS-rebinding check still judges what the client sent, and a malformed header reaches the server as
it was. Request bodies are forwarded by their framing (``Content-Length`` or chunked) so that every
request of a keep-alive connection gets the headers; responses, SSE streams included, are copied back
as they arrive. Either side closing closes the other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from types import TracebackType

MAX_HEAD = 1 << 20
CHUNK = 1 << 16


def rewrite_head(head: bytes, headers: Mapping[str, str]) -> tuple[bytes, int | None, bool]:
    """The request head with ``headers`` set, its ``Content-Length`` (if any), and whether it is chunked."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    replaced = {name.lower().encode() for name in headers}
    kept = [lines[0]]
    length, chunked = None, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        if key in replaced:
            continue
        if key == b"content-length":
            length = int(value.strip())
        elif key == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        kept.append(line)
    kept += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    return b"\r\n".join(kept) + b"\r\n\r\n", length, chunked


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: int) -> None:
    while count > 0:
        data = await reader.read(min(count, CHUNK))
        if not data:
            raise asyncio.IncompleteReadError(b"", count)
        writer.write(data)
        count -= len(data)
    await writer.drain()


async def _copy_chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        size_line = await reader.readuntil(b"\r\n")
        writer.write(size_line)
        size = int(size_line.split(b";")[0].strip(), 16)
        if size == 0:
            break
        await _copy(reader, writer, size + 2)  # the chunk and its CRLF
    while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
        writer.write(trailer)
    writer.write(b"\r\n")
    await writer.drain()


class HeaderProxy:
    """Listens on a free loopback port and forwards each connection to ``upstream`` with ``headers`` added."""

    def __init__(self, upstream: tuple[str, int], headers: Mapping[str, str]) -> None:
        self.upstream = upstream
        self.headers = dict(headers)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def base(self) -> str:
        """The proxy's base URL (``http://127.0.0.1:<port>``)."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> HeaderProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(client_reader, client_writer)
        finally:
            self._connections.discard(task)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream, limit=MAX_HEAD)
        except OSError:
            client_writer.close()
            return
        requests = asyncio.ensure_future(self._requests(client_reader, up_writer))
        responses = asyncio.ensure_future(self._responses(up_reader, client_writer))
        try:
            await asyncio.wait({requests, responses}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (requests, responses):
                task.cancel()
            await asyncio.gather(requests, responses, return_exceptions=True)
            for writer in (up_writer, client_writer):
                writer.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Forward requests until the client closes, adding the headers to each head."""
        with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            while True:
                head, length, chunked = rewrite_head(await reader.readuntil(b"\r\n\r\n"), self.headers)
                writer.write(head)
                if chunked:
                    await _copy_chunked(reader, writer)
                else:
                    await _copy(reader, writer, length or 0)

    async def _responses(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy the server's bytes back as they arrive (SSE events are not held back)."""
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()

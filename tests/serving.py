"""Serving an application for a test: uvicorn on a loopback port, lifespan included, until the block ends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import uvicorn
from starlette.types import ASGIApp


def free_socket() -> socket.socket:
    """A TCP socket bound to a free loopback port (kept, so no one else can take the port meanwhile)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    """A loopback port free at the moment (for a server in another process, which binds it itself)."""
    with free_socket() as sock:
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(
    app: ASGIApp, sock: socket.socket | None = None, *, startup_timeout: float = 15.0, **options: Any
) -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn on ``sock`` (a free loopback port if None); yields the port.

    ``options`` go to ``uvicorn.Config`` (TLS files, ``proxy_headers``, ``timeout_graceful_shutdown``).
    ``log_config=None`` as in ``testgate serve``: uvicorn's own logging config would give its loggers a
    handler of their own, bypassing the redacting one, for the rest of the test process.
    """
    sock = sock or free_socket()
    config = uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on", ws="none", http="h11", **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        with anyio.fail_after(startup_timeout):
            # uvicorn exposes readiness only as a flag; give the loop back until it is set.
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()

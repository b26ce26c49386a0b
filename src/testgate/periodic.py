"""Background maintenance passes that run while the server is up (retention, expired OAuth rows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import structlog

from testgate.store.db import UNREACHABLE

log = structlog.get_logger("testgate.periodic")


async def repeat(name: str, work: Callable[[], Awaitable[object]], interval_seconds: float) -> None:
    """Run ``work`` now and then every ``interval_seconds`` until cancelled; a failed pass is retried next time."""
    while True:
        try:
            await work()
        except UNREACHABLE:
            # The database may be briefly unreachable; the server keeps serving and the next pass retries.
            log.exception("maintenance pass failed", task=name)
        await anyio.sleep(interval_seconds)


@asynccontextmanager
async def running(name: str, work: Callable[[], Awaitable[object]], interval_seconds: float) -> AsyncIterator[None]:
    """Run ``repeat`` in the background while the context is open (the server's lifespan)."""
    async with anyio.create_task_group() as group:
        group.start_soon(repeat, name, work, interval_seconds)
        try:
            yield
        finally:
            group.cancel_scope.cancel()

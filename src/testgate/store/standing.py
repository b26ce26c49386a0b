"""One PostgreSQL connection kept aside for single statements in autocommit, on a hot path.

A read-only tool call still appends one audit event. Through a pooled SQLAlchemy connection that is a
checkout with its ping, BEGIN, the statement and COMMIT: four round trips, each a few hundred
microseconds of SQLAlchemy, asyncpg and event loop work. On a connection kept out of the pool and used
through asyncpg directly, a statement that is a whole transaction by itself (a stored function) takes
one round trip and well under a tenth of that CPU.

The connection comes from the engine's pool (same URL, options and TLS) and goes back to it at
``close``. Statements take turns on it. One that finds it closed by the server (a restart, an idle
timeout) opens another; one that fails with it mid-way drops it, so the next one opens another.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

STATEMENT_SECONDS = 30.0  # bound on one statement: a stalled server must not hold every later one forever


class StandingConnection:
    """A pooled connection of ``engine`` kept for ``fetch``; statements run one at a time."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._held: AsyncConnection | None = None
        self._driver: asyncpg.Connection | None = None
        self._turn = asyncio.Lock()

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """The rows of ``sql`` (asyncpg's ``$n`` parameters), run in autocommit."""
        async with self._turn:
            driver = await self._connection()
            try:
                rows: list[asyncpg.Record] = await driver.fetch(sql, *args, timeout=STATEMENT_SECONDS)
            except asyncpg.PostgresError as exc:
                if isinstance(exc, asyncpg.PostgresConnectionError) or driver.is_closed():
                    await self._drop()
                raise  # otherwise the statement failed and the connection is fine
            except BaseException:
                await self._drop()  # lost, timed out or cancelled mid-way: its state is unknown
                raise
            return rows

    async def _connection(self) -> asyncpg.Connection:
        if self._driver is not None and self._driver.is_closed():
            await self._drop()
        if self._driver is None:
            self._held = await self._engine.connect()
            self._driver = (await self._held.get_raw_connection()).driver_connection
        return self._driver

    async def _drop(self) -> None:
        held, self._held, self._driver = self._held, None, None
        if held is not None:
            await held.invalidate()
            await held.close()

    async def close(self) -> None:
        """Give the connection back to the pool (idempotent)."""
        async with self._turn:
            held, self._held, self._driver = self._held, None, None
            if held is not None:
                await held.close()

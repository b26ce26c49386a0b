"""Short SQLite write transactions in one trip to a thread of their own, without SQLAlchemy.

A read-only tool call still appends one audit event. Through SQLAlchemy and aiosqlite that append is a
session, a pool checkout, ``BEGIN IMMEDIATE``, a SELECT of the chain's head, an INSERT and a COMMIT:
four hand-offs to aiosqlite's thread and the ORM's bookkeeping around each, about a millisecond here,
while SQLite itself needs some 70 microseconds for the same statements. ``DirectWriter`` runs the whole
transaction as one function on a plain ``sqlite3`` connection in its own thread: one hand-off.

The connection has the engine's pragmas (WAL, ``synchronous=NORMAL``, foreign keys, busy timeout), so
SQLite's locking is exactly that of any other connection to the file: ``BEGIN IMMEDIATE`` waits for
other processes' writers in the busy handler. Writers of this process take ``Database``'s turn first.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import anyio
from sqlalchemy.engine import URL, make_url

T = TypeVar("T")


def database_file(url: str | URL) -> Path | None:
    """The file of a SQLite database URL; None for another backend, an in-memory or a URI-named database."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


class DirectWriter:
    """One ``sqlite3`` connection to ``path``, used only from its own thread."""

    def __init__(self, path: Path, configure: Callable[[sqlite3.Connection], None], timeout: float) -> None:
        self.path, self._configure, self._timeout = path, configure, timeout
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="testgate-sqlite-direct")
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a write transaction (committed if it returns, rolled back if it raises).

        Once started, the transaction runs to its end even if the caller is cancelled meanwhile: the
        caller's turn at the write lock must not pass to the next writer while this one still holds it.
        """
        running = asyncio.get_running_loop().run_in_executor(self._thread, self._transaction, work)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await asyncio.wait({running})
            raise

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        if connection is None:
            # Autocommit mode: the BEGIN below is the only one (the driver's own would be DEFERRED).
            connection = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            self._configure(connection)
            self._connection = connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            result = work(connection)
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return result

    async def close(self) -> None:
        """Close the connection in its thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

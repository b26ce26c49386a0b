"""Short SQLite write transactions without SQLAlchemy: on the event loop when the lock is free, else in a thread.

A read-only tool call still appends one audit event. Through SQLAlchemy and aiosqlite that append is a
session, a pool checkout, ``BEGIN IMMEDIATE``, a SELECT of the chain's head, an INSERT and a COMMIT:
four hand-offs to aiosqlite's thread and the ORM's bookkeeping around each, about a millisecond here,
while SQLite itself needs some 70 microseconds for the same statements. ``DirectWriter`` runs the whole
transaction as one function on a plain ``sqlite3`` connection, and where it can, without any hand-off:

- **Now, on the event loop**, on a connection whose busy timeout is zero: ``BEGIN IMMEDIATE`` either
  takes the write lock at once or fails at once (SQLITE_BUSY). Holding the lock, the statements of a
  short append take tens of microseconds and, in WAL mode with ``synchronous=NORMAL``, the COMMIT does
  not wait for the disk. That connection never checkpoints on its own (``wal_autocheckpoint=0``): a
  checkpoint writes and syncs the database file, which is no work for an event loop.
- **In a thread of its own**, on a connection with the engine's busy timeout, when the lock was taken
  (another process is writing): the busy handler waits there, not on the loop. The same thread runs a
  checkpoint after every ``CHECKPOINT_EVERY`` transactions committed on the loop.

The checkpoint must also let the WAL start over, or the file grows by every page ever written (here
160 MB in half an hour of benchmark): SQLite rewinds the WAL only at the start of a write transaction
that finds every frame already copied into the database file and no reader still reading frames. A
passive checkpoint running beside the loop's writes never gets there: the loop appends frames while it
copies. So a checkpoint has two phases:

1. **Copying**, in a thread and on a connection of its own: a ``PASSIVE`` checkpoint copies the
   interval's frames into the database file and syncs it while the loop goes on writing (some 65 ms
   for 1,000 audit events here, during which writes used to wait).
2. **Restarting**, in the writer's thread, with this process's writes queued behind it: a ``RESTART``
   checkpoint copies the few frames written meanwhile and waits (at most ``CHECKPOINT_WAIT``, on
   readers that began before it) until no reader needs the WAL, so the next transaction rewinds it
   (about 1.5 ms). If the wait runs out (a long read), the frames are copied as far as possible and the
   next checkpoint tries again.

Every connection has the engine's pragmas (WAL, ``synchronous=NORMAL``, foreign keys), so SQLite's
locking is that of any other connection to the file. Writers of this process take ``Database``'s turn
first, so on the loop the lock is only ever found taken by another process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import anyio
import structlog
from sqlalchemy.engine import URL, make_url

T = TypeVar("T")

CHECKPOINT_EVERY = 1000  # transactions committed on the loop between checkpoints (a few WAL pages each)
CHECKPOINT_WAIT = 0.2  # seconds a checkpoint may wait for readers (and other processes' writers) to finish
log = structlog.get_logger("testgate.store")
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class Later:
    """What ``DirectWriter.now`` returns when the work must run in the thread instead."""


LATER = Later()


def database_file(url: str | URL) -> Path | None:
    """The file of a SQLite database URL; None for another backend, an in-memory or a URI-named database."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


class DirectWriter:
    """``sqlite3`` connections to ``path``: one used on the event loop, one in the writer's thread, one copying
    the WAL back in a thread of its own."""

    def __init__(self, path: Path, configure: Callable[[sqlite3.Connection], None], timeout: float) -> None:
        self.path, self._configure, self._timeout = path, configure, timeout
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="testgate-sqlite-direct")
        self._connection: sqlite3.Connection | None = None  # the thread's: waits for the lock
        self._prompt: sqlite3.Connection | None = None  # the loop's: never waits
        # Tests may drive one Database from more than one event loop thread; one of them at a time.
        self._prompt_in_use = threading.Lock()
        self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="testgate-sqlite-checkpoint")
        self._copying_connection: sqlite3.Connection | None = None  # the copier's
        self._since_checkpoint = 0
        self._copying: asyncio.Future[None] | None = None  # a checkpoint's first phase: writes go on
        self._checkpoint: asyncio.Future[None] | None = None  # its second: writes wait in the thread
        self._closed = False

    async def write(self, work: Callable[[sqlite3.Connection], T], *, now: bool = True) -> T:
        """Run ``work`` in a write transaction (committed if it returns, rolled back if it raises).

        With ``now``, on the loop when the lock is free; without, in the thread, where the statements'
        time in SQLite overlaps with the loop's other work (the better place for a long transaction
        while the loop is busy). ``work`` may run twice: once on the loop, rolled back because the lock
        was taken meanwhile, and then in the thread. Once started in the thread, the transaction runs to
        its end even if the caller is cancelled meanwhile: the caller's turn at the write lock must not
        pass to the next writer while this one still holds it.
        """
        result = self.now(work) if now else LATER
        if not isinstance(result, Later):
            return result
        running = asyncio.get_running_loop().run_in_executor(self._thread, self._waiting, work)
        try:
            return await asyncio.shield(running)
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await asyncio.wait({running})
            raise

    def now(self, work: Callable[[sqlite3.Connection], T]) -> T | Later:
        """``work``'s result on the loop's connection, or ``LATER`` when the lock is taken.

        While a checkpoint runs, writes queue behind it in the thread (see the module docstring).
        """
        if self._closed or self._checkpoint is not None or not self._prompt_in_use.acquire(blocking=False):
            return LATER
        try:
            if self._prompt is None:
                self._prompt = self._open(check_same_thread=False)
                self._prompt.execute("PRAGMA busy_timeout=0")
                self._prompt.execute("PRAGMA wal_autocheckpoint=0")
            result = _transaction(self._prompt, work)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in _BUSY:
                return LATER
            raise
        finally:
            self._prompt_in_use.release()
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and self._copying is None:
            self._since_checkpoint = 0
            self._copying = asyncio.get_running_loop().run_in_executor(self._copier, self._copy_checkpoint)
            self._copying.add_done_callback(self._copied)
        return result

    def _waiting(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return _transaction(self._threads(), work)

    def _copy_checkpoint(self) -> None:
        """Copy the WAL's frames into the database file while writers go on (the copier's thread)."""
        if self._copying_connection is None:
            self._copying_connection = self._open()
        self._copying_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _copied(self, future: asyncio.Future[None]) -> None:
        """The first phase is over: hold this process's writes for the second (unless closing)."""
        self._copying = None
        _log_failure(future)
        if not self._closed:
            self._checkpoint = future.get_loop().run_in_executor(self._thread, self._restart_checkpoint)
            self._checkpoint.add_done_callback(self._checkpointed)

    def _restart_checkpoint(self) -> None:
        """Copy what is left of the WAL into the database file and wait until the next transaction may rewind it.

        Readers are never blocked; writers of other processes wait in their busy handlers meanwhile.
        """
        connection = self._threads()
        connection.execute(f"PRAGMA busy_timeout={int(CHECKPOINT_WAIT * 1000)}")
        try:
            connection.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        finally:
            connection.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")

    def _threads(self) -> sqlite3.Connection:
        """The thread's connection, opened on first use (in the thread)."""
        if self._connection is None:
            self._connection = self._open()
        return self._connection

    def _checkpointed(self, future: asyncio.Future[None]) -> None:
        self._checkpoint = None
        _log_failure(future)

    def _open(self, *, check_same_thread: bool = True) -> sqlite3.Connection:
        # Autocommit mode: the BEGIN of ``_transaction`` is the only one (the driver's own would be DEFERRED).
        connection = sqlite3.connect(
            self.path, timeout=self._timeout, isolation_level=None, check_same_thread=check_same_thread
        )
        self._configure(connection)
        return connection

    async def close(self) -> None:
        """Close the connections (each thread's in its thread) once a running checkpoint ends; idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._prompt_in_use:
            if self._prompt is not None:
                self._prompt.close()
                self._prompt = None
        for phase in (self._copying, self._checkpoint):  # a copy ending now starts no restart (closed)
            if phase is not None:
                await asyncio.wait({phase})
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._close)
        if self._copying_connection is not None:  # no copy ran: no copier thread to start for nothing
            await loop.run_in_executor(self._copier, self._close_copier)
        self._thread.shutdown(wait=False)
        self._copier.shutdown(wait=False)

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _close_copier(self) -> None:
        if self._copying_connection is not None:
            self._copying_connection.close()
            self._copying_connection = None


def _log_failure(checkpoint: asyncio.Future[None]) -> None:
    if not checkpoint.cancelled() and checkpoint.exception() is not None:
        log.warning("WAL checkpoint failed", error=str(checkpoint.exception()))


def _transaction(connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    connection.execute("BEGIN IMMEDIATE")
    try:
        result = work(connection)
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return result

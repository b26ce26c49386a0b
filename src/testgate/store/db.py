"""Engine and session factory. SQLite runs in WAL mode with foreign keys on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import anyio
import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.exc import DBAPIError, InterfaceError, InvalidatePoolError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import await_

from testgate import jsontext
from testgate.store import sqlite_cursor
from testgate.store.changes import AccessVersion
from testgate.store.direct import LATER, DirectWriter, Later, database_file
from testgate.store.migrate import UnknownRevision
from testgate.store.standing import StandingConnection

T = TypeVar("T")

SQLITE_WAIT_SECONDS = 15.0
_DURABILITY_SETTINGS = ("synchronous_commit", "fsync")
_DURABILITY = text("SELECT " + ", ".join(f"current_setting('{name}')" for name in _DURABILITY_SETTINGS))


# What a store call raises while the database is busy or unreachable: SQLAlchemy's errors, and the OS's own
# (asyncpg raises ConnectionRefusedError, an OSError, when a new connection is refused). Loops that must
# outlive an outage (heartbeats, the reaper, maintenance) catch these and try again.
UNREACHABLE = (SQLAlchemyError, OSError)
# What opening a database can fail with that its user must be told in one line, not as a traceback.
TROUBLE = (*UNREACHABLE, UnknownRevision)


def database_down(exc: BaseException) -> BaseException | None:
    """The error that says the database could not be reached or used just now, if ``exc`` is (or holds) one:
    a refused, reset or timed-out connection (asyncpg raises the OS's own), SQLAlchemy's OperationalError or
    InterfaceError (a lost connection, a locked SQLite file), a connection invalidated mid-statement."""
    if isinstance(exc, BaseExceptionGroup):
        return next((found for inner in exc.exceptions if (found := database_down(inner)) is not None), None)
    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | TimeoutError | socket.gaierror):
        return exc  # not any OSError: a missing artifact file is no database outage
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return exc
    return None


def unusable(url: str, exc: BaseException) -> str:
    """Why the database at ``url`` cannot be used, in one line: the URL without its password, and the
    error's first line (statement parameters are never in it: engines hide them)."""
    where = make_url(url).render_as_string(hide_password=True)
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"cannot use the database at {where}: {reason}"


def normalize_url(url: str) -> str:
    """Pick the async driver for a plain ``postgresql://`` or ``sqlite://`` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_WAIT_SECONDS * 1000)}")
    cursor.close()


def _sqlite_autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver's implicit BEGIN is DEFERRED).
    dbapi_connection.isolation_level = None


READ_ONLY = "testgate_read_only"


def _sqlite_begin(connection: Any) -> None:
    # A deferred transaction that reads, then writes after another writer committed, fails with
    # SQLITE_BUSY_SNAPSHOT (busy_timeout cannot help). Taking the write lock at BEGIN serializes
    # writers instead, so concurrent writers wait their turn. A session opened read-only reads a
    # snapshot beside the writer (WAL) and never takes the lock.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _postgresql_ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Check a pooled PostgreSQL connection as it is checked out, in one round trip.

    SQLAlchemy's ``pool_pre_ping`` takes three with asyncpg (BEGIN, an empty query, ROLLBACK: the
    transaction keeps asyncpg's prepared statement on one server connection under PgBouncer's transaction
    mode); a query in the simple protocol prepares nothing. (Not an empty one: asyncpg 0.32 fails on the
    answer to an empty simple query.) As with ``pool_pre_ping``, a failed check discards the connection
    and every other one opened before it (the server went away: a restart, a failover), and the checkout
    goes on with a new one.
    """
    try:
        await_(dbapi_connection.driver_connection.execute("SELECT 1"))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise InvalidatePoolError(f"a pooled connection failed its check: {exc}") from exc


# Connections kept, and opened beyond them at busy times, per backend (``create_engine``).
SQLITE_POOL = (20, 0)
POSTGRESQL_POOL = (20, 10)


def create_engine(
    url: str, *, echo: bool = False, pool_size: int | None = None, pool_overflow: int | None = None
) -> AsyncEngine:
    """An async engine for ``url``; the SQLite file's directory is created if needed.

    ``pool_size`` connections are kept open and up to ``pool_overflow`` more are opened while they are
    all in use (each closed again when returned): the backend's defaults (``SQLITE_POOL``,
    ``POSTGRESQL_POOL``) for None. On SQLite a connection is cheap to keep and dear to open (aiosqlite
    starts a thread for each, and every one runs the pragmas), so nothing overflows: a call finding all
    twenty taken waits its turn (up to SQLAlchemy's ``pool_timeout``, 30 s), as it would for the event
    loop anyway. SQLAlchemy's own 5 + 10 opened and closed a connection for about one call in four at
    sixteen at a time (docs/performance.md).
    """
    url = normalize_url(url)
    parsed = make_url(url)
    # JSON columns: json.dumps's text, without building an encoder for every value (``jsontext``).
    # A database error's message carries no statement parameters: they include password and token hashes,
    # and such a message reaches the log (``hide_parameters``).
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": jsontext.dumps, "hide_parameters": True}
    sqlite = parsed.get_backend_name() == "sqlite"
    size, overflow = SQLITE_POOL if sqlite else POSTGRESQL_POOL
    if sqlite:
        if (file := database_file(parsed)) is not None:
            # It holds password and token hashes and the audit log: only its owner may enter (``db``
            # commands may be the first to create it, before ``serve`` ever runs).
            file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # The file too (SQLite gives its -wal and -shm files the database file's mode).
            with contextlib.suppress(FileExistsError):
                os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        kwargs["connect_args"] = {"timeout": SQLITE_WAIT_SECONDS}
        # Every session ends its transaction itself (``Database.session``, and a Connection rolls back on
        # close), so the pool's extra ROLLBACK on return is a wasted trip to aiosqlite's thread.
        kwargs["pool_reset_on_return"] = None
    dialect = cast(type[DefaultDialect], parsed.get_dialect())
    if issubclass(dialect.get_pool_class(parsed), QueuePool):  # not SQLite in memory (one connection)
        kwargs["pool_size"] = size if pool_size is None else pool_size
        kwargs["max_overflow"] = overflow if pool_overflow is None else pool_overflow
    engine = create_async_engine(url, **kwargs)
    if sqlite:
        event.listen(engine.sync_engine, "connect", sqlite_cursor.install)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "connect", _sqlite_autocommit_driver)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    elif parsed.get_backend_name() == "postgresql":
        event.listen(engine.sync_engine, "checkout", _postgresql_ping)
    return engine


class Database:
    """The engine and a session factory: what services receive to reach the store."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # A session class of this database's own, so the access watch applies to its sessions only.
        watched: type[Session] = type("WatchedSession", (Session,), {})
        self.access = AccessVersion(engine.url.render_as_string(hide_password=False))
        self.access.watch(watched)
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, sync_session_class=watched)
        # SQLite has one writer at a time; queueing in-process (FIFO) is fairer than its busy handler,
        # which sleeps and retries. Other processes on the same file still wait in the busy handler.
        self._turn = asyncio.Lock() if self.is_sqlite else None
        file = database_file(engine.url)
        self._direct = DirectWriter(file, _sqlite_pragmas, SQLITE_WAIT_SECONDS) if file is not None else None
        # PostgreSQL: one connection kept for single-statement appends in autocommit (``store.standing``).
        self.standing = StandingConnection(engine) if engine.dialect.name == "postgresql" else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def write_idle(self) -> bool:
        """A write session would start at once: no writer of this process holds or awaits SQLite's lock."""
        return self._turn is None or not self._turn.locked()

    @asynccontextmanager
    async def session(self, *, write: bool = True) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error.

        Ending the transaction is shielded from cancellation: a caller that goes away mid-call (a client
        hanging up) must not leave the connection, and SQLite's write lock, held behind it.
        ``write=False`` is for sessions that only read: on SQLite they neither queue for nor take the
        write lock (a write in such a session fails if another writer committed since it began).
        """
        async with self._my_turn(write):
            session = self.sessions()
            async with _ended(session):
                if write:
                    await session.begin()
                else:
                    await session.connection(execution_options={READ_ONLY: True})
                yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a write transaction, ended like ``session``'s: for appends that need no ORM.

        Changes made here are not watched for access changes (``AccessVersion``): no access table here.
        """
        async with self._my_turn(True):
            connection = await self.engine.connect()
            async with _ended(connection):
                await connection.begin()
                yield connection

    @property
    def direct_writes(self) -> bool:
        """``write_direct`` is available: a SQLite database in a file."""
        return self._direct is not None

    async def write_direct(self, work: Callable[[sqlite3.Connection], T], *, now: bool = True) -> T:
        """Run ``work`` on a plain ``sqlite3`` connection in a write transaction: on the loop (``now``) when
        SQLite's lock is free, else in one trip to its thread (``store.direct``).

        For short appends on a hot path; the turn at the write lock is taken like a write session's.
        Nothing written here is watched for access changes: no access table belongs here.
        """
        assert self._direct is not None, "direct writes need a SQLite database in a file"
        async with self._my_turn(True):
            return await self._direct.write(work, now=now)

    def write_direct_now(self, work: Callable[[sqlite3.Connection], T]) -> T | Later:
        """``write_direct`` without waiting: ``work``'s result, or ``LATER`` when it would have to wait
        (this process is writing, a checkpoint runs, or another process holds SQLite's lock).

        No hand-off and no suspension: for the one event of a call when nobody else is writing.
        """
        assert self._direct is not None, "direct writes need a SQLite database in a file"
        if self._turn is not None and self._turn.locked():
            return LATER
        return self._direct.now(work)

    @asynccontextmanager
    async def _my_turn(self, write: bool) -> AsyncIterator[None]:
        if self._turn is None or not write:
            yield
            return
        if self._turn.locked():
            try:
                # Bounded like SQLite's own busy timeout, so a nested session fails loudly instead of hanging.
                # (Not wait_for: cancelled at the wrong moment it can leave the lock acquired and unowned.)
                async with asyncio.timeout(SQLITE_WAIT_SECONDS):
                    await self._turn.acquire()
            except TimeoutError:
                raise RuntimeError("timed out waiting for the SQLite write lock") from None
        else:
            await self._turn.acquire()  # free: taken at once, without suspending
        try:
            yield
        finally:
            self._turn.release()

    async def lax_durability(self) -> list[str]:
        """The PostgreSQL settings under which a commit may be confirmed before it is on disk, as ``name=value``
        (``synchronous_commit`` or ``fsync`` off); none on SQLite, whose WAL commits outlive the process."""
        if self.engine.dialect.name != "postgresql":
            return []
        async with self.engine.connect() as connection:
            values = (await connection.execute(_DURABILITY)).one()
        return [f"{name}={value}" for name, value in zip(_DURABILITY_SETTINGS, values, strict=True) if value == "off"]

    async def dispose(self) -> None:
        if self._direct is not None:
            await self._direct.close()
        if self.standing is not None:
            await self.standing.close()
        await self.access.close()
        await self.engine.dispose()


@asynccontextmanager
async def _ended(unit: AsyncSession | AsyncConnection) -> AsyncIterator[None]:
    """Commit ``unit`` if the block succeeds, else roll back; then close it. Shielded from cancellation."""
    try:
        yield
        with anyio.CancelScope(shield=True):
            await unit.commit()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await unit.rollback()
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await unit.close()

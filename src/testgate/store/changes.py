"""The access version: a number that moves whenever a commit changes who may do what.

The door's caches (verified tokens, organization and environment by slug) are valid only while the
version they were filled under is still current. Every session of a ``Database`` watches what it
writes; a commit that touched a table in ``ACCESS_TABLES`` moves the version:

- in this process at once (``after_commit``);
- in other processes on the same SQLite file through a marker file beside the database, replaced on
  every such commit (a new inode each time, so even a coarse file-system clock cannot hide a change);
  ``current()`` compares it with one ``stat``, at most once a millisecond (``RESTAT_NS``: the three
  caches a call consults share one look, and a change elsewhere is seen a millisecond later at most);
- in other replicas on PostgreSQL through ``NOTIFY`` sent inside the committing transaction, so it is
  delivered exactly when the change becomes visible; each replica listens on a connection of its own.
  While that connection is down ``current()`` answers None and the caches are not used at all.

A change that is not made through a ``Database`` session (a hand-written SQL statement) is seen when a
cache entry ages out (``access_cache_seconds``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from testgate.store.direct import database_file

log = structlog.get_logger("testgate.store")

# Tables whose rows decide authentication, authorization or the scope of a call.
ACCESS_TABLES = frozenset(
    {
        "organizations",
        "environments",
        "users",
        "memberships",
        "environment_grants",
        "api_tokens",
        "oauth_clients",
        "oauth_refresh_tokens",
        "oauth_revoked_access_tokens",
        "oauth_consents",
        "oauth_signing_keys",
    }
)
# Columns written on routine use that decide nothing (a token's last use is bookkeeping).
NEUTRAL_COLUMNS = {"api_tokens": frozenset({"last_used_at", "last_used_from"})}
CHANNEL = "testgate_access"
LISTEN_READY_SECONDS = 5.0
_MARK = "testgate.access_changed"
RESTAT_NS = 1_000_000  # the marker file is looked at again after this long
K = TypeVar("K")
V = TypeVar("V")


class AccessVersion:
    """The version the door's caches are checked against; see the module docstring."""

    def __init__(self, url: str) -> None:
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        self._local = 0
        self._marker: Path | None = None
        self._seen: tuple[int, int] | None = None
        self._looked_at = -RESTAT_NS
        file = database_file(parsed)
        if file is not None:
            self._marker = file.with_name(file.name + "-access")
        self._listener: Any = None
        self._task: asyncio.Task[None] | None = None
        self._url = url

    # --- reading -----------------------------------------------------------------------------------

    def current(self) -> int | None:
        """The version now, or None when a change elsewhere could go unseen (caches must not be used)."""
        if self.backend == "postgresql":
            return self._local if self._listener is not None and not self._listener.is_closed() else None
        now = time.monotonic_ns()
        if self._marker is not None and now - self._looked_at >= RESTAT_NS:
            try:
                stat = os.stat(self._marker)
            except FileNotFoundError:
                seen: tuple[int, int] | None = None
            except OSError:
                return None  # and look again next time
            else:
                seen = (stat.st_ino, stat.st_mtime_ns)
            self._looked_at = now
            if seen != self._seen:
                self._seen = seen
                self._local += 1
        return self._local

    # --- moving ------------------------------------------------------------------------------------

    def moved(self) -> None:
        """A commit of this process changed access: move the version here and tell the other processes."""
        self._local += 1
        if self._marker is not None:
            try:
                self._replace_marker()
                stat = os.stat(self._marker)
                self._seen = (stat.st_ino, stat.st_mtime_ns)
            except OSError:
                log.warning("could not replace the access marker file", path=str(self._marker))

    def _replace_marker(self) -> None:
        assert self._marker is not None
        fd, name = tempfile.mkstemp(prefix=".access-", dir=self._marker.parent)
        os.close(fd)
        os.replace(name, self._marker)

    # --- PostgreSQL listener -------------------------------------------------------------------------

    async def listen(self) -> None:
        """Listen for other replicas' changes (PostgreSQL; elsewhere nothing to do), reconnecting."""
        if self.backend != "postgresql" or self._task is not None:
            return
        ready = asyncio.Event()
        self._task = asyncio.create_task(self._listen(ready), name="testgate-access-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), LISTEN_READY_SECONDS)

    async def _listen(self, ready: asyncio.Event) -> None:
        import asyncpg  # type: ignore[import-untyped]

        dsn = make_url(self._url).set(drivername="postgresql").render_as_string(hide_password=False)
        while True:
            try:
                connection = await asyncpg.connect(dsn, timeout=LISTEN_READY_SECONDS)
                try:
                    lost = asyncio.Event()
                    connection.add_termination_listener(lambda _connection, lost=lost: lost.set())
                    await connection.add_listener(CHANNEL, self._notified)
                    self._local += 1  # whatever changed while nobody listened
                    self._listener = connection
                    ready.set()
                    await lost.wait()
                finally:
                    self._listener = None
                    with contextlib.suppress(Exception):
                        await connection.close(timeout=LISTEN_READY_SECONDS)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("access changes are not heard; the door's caches are off", error=str(exc))
            ready.set()
            await asyncio.sleep(1.0)

    def _notified(self, *_args: object) -> None:
        self._local += 1

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- watching sessions ---------------------------------------------------------------------------

    def watch(self, session_class: type[Session]) -> None:
        """Mark sessions of ``session_class`` that write access tables; move the version on commit."""
        event.listen(session_class, "do_orm_execute", _watch_statement)
        event.listen(session_class, "after_flush", _watch_flush)
        event.listen(session_class, "before_commit", self._before_commit)
        event.listen(session_class, "after_commit", self._after_commit)
        event.listen(session_class, "after_rollback", _forget)

    def _before_commit(self, session: Session) -> None:
        if self.backend != "postgresql":
            return
        if session.info.get(_MARK) or _pending_access_change(session):
            session.info[_MARK] = True
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(_MARK, False):
            self.moved()


def _forget(session: Session) -> None:
    session.info.pop(_MARK, None)


def _watch_statement(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in ACCESS_TABLES:
        state.session.info[_MARK] = True


def _watch_flush(session: Session, _flush: UOWTransaction) -> None:
    if _pending_access_change(session):
        session.info[_MARK] = True


def _pending_access_change(session: Session) -> bool:
    """Whether the objects waiting to be flushed add, change or delete a row of an access table."""
    for obj in (*session.new, *session.deleted):
        if _table_of(obj) in ACCESS_TABLES:
            return True
    for obj in session.dirty:
        table = _table_of(obj)
        if table in ACCESS_TABLES and _changed_columns(obj) - NEUTRAL_COLUMNS.get(table, frozenset()):
            return True
    return False


def _table_of(obj: object) -> str | None:
    return getattr(type(obj), "__tablename__", None)


def _changed_columns(obj: object) -> set[str]:
    state = inspect(obj)
    return {attr.key for attr in state.attrs if attr.history.has_changes()}


class AccessCache(Generic[K, V]):
    """Values that hold only while the access version they were read under is current, and never
    longer than ``ttl`` seconds or their own ``valid_until`` (a token's expiry, say).

    Fill it with the version taken *before* the read (``AccessVersion.current()``): a change committed
    while the read ran then makes the entry stale at once. Bounded: the oldest entries go first.
    """

    def __init__(self, version: AccessVersion, ttl: float, max_entries: int = 10_000) -> None:
        self.version, self.ttl, self.max_entries = version, ttl, max_entries
        self._entries: OrderedDict[K, tuple[V, int, float]] = OrderedDict()

    def get(self, key: K) -> V | None:
        if self.ttl <= 0:
            return None
        found = self._entries.get(key)
        if found is None:
            return None
        value, version, until = found
        if version != self.version.current() or time.monotonic() >= until:
            self._entries.pop(key, None)
            return None
        return value

    def put(self, key: K, value: V, version: int | None, valid_for: float | None = None) -> None:
        """Keep ``value`` read under ``version`` (None: nothing is kept), for at most ``valid_for`` seconds."""
        if self.ttl <= 0 or version is None:
            return
        lifetime = self.ttl if valid_for is None else min(self.ttl, valid_for)
        if lifetime <= 0:
            return
        self._entries[key] = (value, version, time.monotonic() + lifetime)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

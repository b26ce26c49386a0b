"""Group commit for audit events written outside the call's own transaction.

A call that changes nothing (a read, a refused or failed call) still gets its event committed before
its answer goes out, but it need not commit alone: events handed to ``record`` while a batch is being
written go together in the next transaction, in the order they came. One commit for many calls is what
lets reads run side by side instead of queueing for the database's write lock one by one.

A call alone (no other call under way in this process, ``calls``) whose event finds nothing else
being written (no batch queued or being written, SQLite's lock free) commits it at once: on SQLite on
the event loop, on PostgreSQL in the caller's own task, without the batch's task and hand-offs. While
calls overlap, every event goes through the queue: committed one by one as they come, overlapping
calls' events would each take a commit of their own (tried in the fourth session: p99 doubled at 64
connections).

On PostgreSQL a batch is one statement, a transaction of its own, on a connection kept for it
(``store.standing``, ``audit.postgresql``): no checkout, BEGIN or COMMIT per batch.

A mutating call keeps writing its event in its own transaction (``dispatch``): there the event and the
change commit or roll back together.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from typing import NoReturn

import structlog

from testgate.audit import recorder
from testgate.audit.sink import FileSink
from testgate.store.db import Database
from testgate.store.direct import Later

log = structlog.get_logger("testgate.audit")

MAX_BATCH = 500
ON_LOOP_BATCH = 2  # events a batch may hold and still be written on the event loop


class AuditWriter:
    """Writes events in batches; ``record`` returns once its event is committed, or raises."""

    def __init__(self, db: Database, sink: FileSink | None = None) -> None:
        self.db, self.sink = db, sink
        self._queue: list[tuple[recorder.Event, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._calls = 0
        self._alone_writing = 0  # lone events being appended in their callers' tasks (PostgreSQL)
        self._under_way = _UnderWay(self)
        # Whether a read's event is worth starting before its answer is built (``Call.hold``): on PostgreSQL
        # its commit is a round trip other work can overlap. On SQLite a lone event commits on the event loop
        # itself, so starting it early overlaps nothing and only adds the hand-over (measured side by side:
        # a few per cent fewer calls/s at 1 and 16 connections; docs/performance.md, "Eleventh session").
        self.early_commit = db.standing is not None

    def call(self) -> _UnderWay:
        """A call is under way (``dispatch``) for as long as the returned context lasts: while another one
        is too, events go through the queue."""
        return self._under_way

    @property
    def inline_cheaper(self) -> bool:
        """An event costs less inside the call's own write transaction than here (no direct writes or
        standing connection: an SQLite database in memory)."""
        return not self.db.direct_writes and self.db.standing is None

    @property
    def idle(self) -> bool:
        """No event is waiting or being written."""
        return not self._queue and not self._alone_writing and (self._task is None or self._task.done())

    async def record(self, event: recorder.Event) -> None:
        """Commit ``event``; a caller cancelled meanwhile does not take its event back.

        Except on PostgreSQL, for a call alone cancelled during its statement: its event may or may not be
        committed then (``dispatch`` records the cancellation in an event of its own either way).
        """
        if self._calls <= 1 and self.idle:
            if self.db.direct_writes and self._now(event):
                return
            if self.db.standing is not None:
                await self._alone(event)
                return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, waiter))
        if self._task is None or self._task.done() or self._task.get_loop() is not waiter.get_loop():
            self._task = asyncio.create_task(self._drain(), name="testgate-audit-writer")
        await asyncio.shield(waiter)

    def _now(self, event: recorder.Event) -> bool:
        """SQLite in a file: commit the event of a call alone at once on the loop; false if SQLite's lock is
        taken and it must queue."""
        try:
            rows = self.db.write_direct_now(self._appending([event]))
        except Exception:
            _log_unwritten(event)
        if isinstance(rows, Later):
            return False
        if self.sink is not None:
            self.sink.append(rows)
        return True

    async def _alone(self, event: recorder.Event) -> None:
        """PostgreSQL: the event of a call alone, appended in the caller's own task (no batch task, future or
        shield). Events arriving meanwhile queue, and their batch's statement waits for this one's."""
        self._alone_writing += 1
        try:
            rows = await recorder.append_standing(self.db, [event])
        except Exception:
            _log_unwritten(event)
        finally:
            self._alone_writing -= 1
        if self.sink is not None:
            self.sink.append(rows)

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            await self._write(batch)

    async def _write(self, batch: Sequence[tuple[recorder.Event, asyncio.Future[None]]]) -> None:
        try:
            await self._commit([event for event, _ in batch])
        except Exception:
            if len(batch) == 1:
                log.exception("audit write failed", action=batch[0][0].action)
                _settle(batch, RuntimeError("the audit event could not be written"))
                return
            # One bad event must not fail the others: write each on its own.
            for item in batch:
                await self._write([item])
            return
        _settle(batch, None)

    async def _commit(self, events: list[recorder.Event]) -> None:
        if self.db.direct_writes:
            # SQLite in a file: the whole transaction in one function (``store.direct``). A small batch
            # is written at once on the loop; a large one (many calls at a time) in the writer's thread,
            # where SQLite's share overlaps with the loop's work: on the loop, large batches doubled p99
            # at 64 connections.
            rows = await self.db.write_direct(self._appending(events), now=len(events) <= ON_LOOP_BATCH)
        elif self.db.standing is not None:
            # PostgreSQL: one statement, its own transaction, on a connection kept for it.
            rows = await recorder.append_standing(self.db, events)
        else:
            async with self.db.transaction() as connection:
                rows = await recorder.record_many(connection, events)
        if self.sink is not None:
            self.sink.append(rows)

    def _appending(self, events: list[recorder.Event]) -> Callable[[sqlite3.Connection], list[recorder.ChainedEvent]]:
        """The direct write that appends ``events`` (``Database.write_direct``)."""
        dialect = self.db.engine.dialect
        return lambda connection: recorder.append_direct(connection, events, dialect)

    async def close(self) -> None:
        """Wait for the events already handed over."""
        task = self._task
        if task is not None and not task.done():
            await asyncio.shield(task)


class _UnderWay:
    """``AuditWriter.call``'s context: counts the calls under way (one object, reused)."""

    __slots__ = ("writer",)

    def __init__(self, writer: AuditWriter) -> None:
        self.writer = writer

    def __enter__(self) -> None:
        self.writer._calls += 1

    def __exit__(self, *exc: object) -> None:
        self.writer._calls -= 1


def _log_unwritten(event: recorder.Event) -> NoReturn:
    """Log the exception being handled and raise the error an unwritten event is reported with."""
    log.exception("audit write failed", action=event.action)
    raise RuntimeError("the audit event could not be written") from None


def _settle(batch: Sequence[tuple[recorder.Event, asyncio.Future[None]]], error: Exception | None) -> None:
    for _, waiter in batch:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)

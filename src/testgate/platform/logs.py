"""Execution logs: a bounded, masked writer; a keyset reader with tail, range and grep; a live follower.

Lines live in ``log_lines`` with a dense ``seq`` from 1 per execution; ``step`` is -1 for system lines.
Sensitive values MUST be masked before a line is stored, so the writer masks first and bounds second.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Row, Select, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.errors import InvalidInput, NotFound
from testgate.platform.context import Platform
from testgate.platform.executions import MASK, TERMINAL
from testgate.platform.patterns import Pattern, compile_grep
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow, LogLineRow

SYSTEM_STEP = -1
FLUSH_LINES = 200
FLUSH_SECONDS = 0.1
CHUNK_LINES = 1000
MAX_SCAN_LINES = 200_000
MAX_TAIL = 10_000
MAX_CONTEXT = 50
MAX_MATCHES = 1000
MAX_PAGE_BYTES = 4 * 1024 * 1024
FOLLOW_RECHECK_SECONDS = 2.0


class LogLine(BaseModel):
    seq: int
    step: int
    time: datetime
    text: str


class LogPage(BaseModel):
    execution_id: str
    lines: list[LogLine] = Field(default_factory=list)
    total_lines: int
    truncated: bool = Field(default=False, description="this page was cut by its bounds")
    log_truncated: bool = Field(description="the execution's log hit its store bound")
    next_seq: int = Field(description="the seq to continue reading from")
    matches: int | None = Field(default=None, description="matching lines shown, when grep was given")


def _mask_list(masks: Sequence[str]) -> list[str]:
    """Longest first, so a secret containing another is replaced whole; lines of multi-line secrets too."""
    found = {m for m in masks if m}
    for mask in list(found):
        # Output is stored line by line, so a multi-line secret can only appear split at newlines.
        found.update(part for part in mask.splitlines() if len(part.strip()) >= 4)
    return sorted(found, key=len, reverse=True)


async def _log_state(session: AsyncSession, execution_id: str) -> Row[int, int, bool]:
    columns = (ExecutionRow.log_lines, ExecutionRow.log_bytes, ExecutionRow.log_truncated)
    row = (await session.execute(select(*columns).where(ExecutionRow.id == execution_id))).one_or_none()
    if row is None:
        raise NotFound(f"execution {execution_id!r} not found")
    return row


class LogWriter:
    """Appends one execution's lines: masked, bounded per line and in total, committed in batches."""

    def __init__(self, platform: Platform, execution_id: str, *, masks: Sequence[str]) -> None:
        bounds = platform.settings.runner
        self._platform = platform
        self.execution_id = execution_id
        self._masks = _mask_list(masks)
        self._max_line = bounds.max_log_line_bytes
        self._max_total = bounds.max_log_bytes
        self._pending: list[dict[str, Any]] = []
        self._seq: int | None = None
        self._bytes = 0
        self._truncated = False
        self._load_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self._timer_sleeping = False

    @property
    def truncated(self) -> bool:
        return self._truncated

    @property
    def line_budget(self) -> int:
        """Bytes of one line a reader should keep: the bound plus room to mask a secret crossing it."""
        return self._max_line + max((len(m.encode()) for m in self._masks), default=0)

    def mask(self, text: str) -> str:
        """``text`` with every sensitive value replaced by ``***``."""
        for secret in self._masks:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    async def write(self, step: int, text: str, *, dropped_bytes: int = 0) -> None:
        """Store one line; ``dropped_bytes`` counts bytes of it the reader already discarded."""
        await self._load()
        if self._truncated:
            return
        line = self._bound(self.mask(text), dropped_bytes)
        size = len(line.encode())
        if self._bytes + size > self._max_total:
            self._truncated = True
            step, line = SYSTEM_STEP, f"[log truncated: limit {self._max_total} bytes reached]"
            size = len(line.encode())
        self._append(step, line, size)
        if len(self._pending) >= FLUSH_LINES:
            await self.flush()
        elif self._timer is None or self._timer.done():
            self._timer_sleeping = True  # until it wakes, cancelling it loses nothing
            self._timer = asyncio.create_task(self._flush_later())

    async def flush(self) -> None:
        """Commit the pending lines in one transaction, then wake live watchers."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            totals = {"log_lines": self._seq, "log_bytes": self._bytes, "log_truncated": self._truncated}
            async with self._platform.db.session() as session:
                await session.execute(insert(LogLineRow), batch)
                await session.execute(update(ExecutionRow).where(ExecutionRow.id == self.execution_id).values(**totals))
        await self._platform.events.notify(self.execution_id)

    async def close(self) -> None:
        """Flush what is pending and stop the flush timer."""
        timer, self._timer = self._timer, None
        if timer is not None:
            # Cancel only while it sleeps: cancelling a flush in progress would lose its batch.
            if self._timer_sleeping:
                timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        await self.flush()

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(FLUSH_SECONDS)
        finally:
            self._timer_sleeping = False
        await self.flush()

    async def _load(self) -> None:
        """Continue after lines already stored (a writer may not be the first for an execution)."""
        async with self._load_lock:
            if self._seq is not None:
                return
            async with self._platform.db.session() as session:
                row = await _log_state(session, self.execution_id)
            self._seq, self._bytes, self._truncated = row.log_lines, row.log_bytes, row.log_truncated

    def _bound(self, text: str, dropped_bytes: int) -> str:
        data = text.encode()
        if len(data) <= self._max_line and not dropped_bytes:
            return text
        kept = data[: self._max_line].decode(errors="ignore")
        return f"{kept} … [line truncated: {len(data) + dropped_bytes} bytes]"

    def _append(self, step: int, text: str, size: int) -> None:
        self._seq = (self._seq or 0) + 1
        self._bytes += size
        self._pending.append(
            {"execution_id": self.execution_id, "seq": self._seq, "step": step, "ts": utcnow(), "text": text}
        )


# Read side -------------------------------------------------------------------------------------------

_COLUMNS = (LogLineRow.seq, LogLineRow.step, LogLineRow.ts, LogLineRow.text)
_LineRow = Row[int, int, datetime, str]


def _line(row: _LineRow) -> LogLine:
    return LogLine(seq=row.seq, step=row.step, time=row.ts, text=row.text)


def _check(name: str, value: int | None, low: int, high: int | None = None) -> None:
    if value is not None and (value < low or (high is not None and value > high)):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidInput(f"{name} must be {bound} (got {value})")


async def read_logs(
    session: AsyncSession,
    execution_id: str,
    *,
    tail: int | None = 100,
    start: int | None = None,
    end: int | None = None,
    step: int | None = None,
    grep: str | None = None,
    context: int = 0,
    max_matches: int = 50,
    max_bytes: int = 64_000,
) -> LogPage:
    """A page of one execution's log.

    ``start``/``end`` is an inclusive seq range (``tail`` is then ignored); otherwise the last ``tail``
    lines (all lines from the start when ``tail`` is None). ``grep`` searches the range, or the whole
    log, returning matches with ``context`` lines around each. ``step`` keeps one step's lines.
    """
    _check("tail", tail, 0, MAX_TAIL)
    _check("start", start, 1)
    _check("end", end, 1)
    _check("context", context, 0, MAX_CONTEXT)
    _check("max_matches", max_matches, 1, MAX_MATCHES)
    _check("max_bytes", max_bytes, 1, MAX_PAGE_BYTES)
    pattern = compile_grep(grep) if grep is not None else None
    head = await _log_state(session, execution_id)
    total = head.log_lines
    page = LogPage(execution_id=execution_id, total_lines=total, log_truncated=head.log_truncated, next_seq=total + 1)
    reader = _Reader(session, page, max_bytes, step)
    first = start or 1
    if pattern is not None:
        await reader.grep(pattern, first, end, context, max_matches)
    elif start is not None or end is not None or tail is None:
        await reader.range(first, end)
    else:
        await reader.tail(tail)
    if page.lines:  # lines committed while reading may lie past the total read first
        page.next_seq = max(page.next_seq, page.lines[-1].seq + 1)
    return page


class _Reader:
    """Fills one page within its byte bound; the first line always fits, so a caller makes progress."""

    def __init__(self, session: AsyncSession, page: LogPage, max_bytes: int, step: int | None) -> None:
        self.session = session
        self.page = page
        self.left = max_bytes
        self.step = step

    def add(self, row: _LineRow) -> bool:
        """Append ``row`` if it fits; once one does not, nothing more does and the page is truncated."""
        size = len(row.text.encode()) + 1
        if self.page.truncated or (size > self.left and self.page.lines):
            self.page.truncated = True
            return False
        self.left -= size
        self.page.lines.append(_line(row))
        return True

    def _query(self) -> Select[int, int, datetime, str]:
        query = select(*_COLUMNS).where(LogLineRow.execution_id == self.page.execution_id)
        return query if self.step is None else query.where(LogLineRow.step == self.step)

    async def _scan(self, first: int, last: int | None) -> AsyncGenerator[_LineRow]:
        """Lines ``first..last`` in order, one keyset chunk in memory at a time."""
        after = first - 1
        while True:
            query = self._query().where(LogLineRow.seq > after)
            if last is not None:
                query = query.where(LogLineRow.seq <= last)
            rows = (await self.session.execute(query.order_by(LogLineRow.seq).limit(CHUNK_LINES))).all()
            for row in rows:
                yield row
            if len(rows) < CHUNK_LINES:
                return
            after = rows[-1].seq

    def _read_whole(self, first: int, last: int | None) -> None:
        """Where to continue once ``first..last`` is read whole: past it, or past the log's end."""
        total = self.page.total_lines
        self.page.next_seq = max(first, min(last if last is not None else total, total) + 1)

    async def range(self, first: int, last: int | None) -> None:
        self._read_whole(first, last)
        async with contextlib.aclosing(self._scan(first, last)) as rows:
            async for row in rows:
                if not self.add(row):
                    self.page.next_seq = row.seq
                    return

    async def tail(self, count: int) -> None:
        """The newest ``count`` lines that fit, read backwards by keyset."""
        query = self._query().order_by(LogLineRow.seq.desc())
        while len(self.page.lines) < count:
            limit = min(CHUNK_LINES, count - len(self.page.lines))
            rows = (await self.session.execute(query.limit(limit))).all()
            if not all(self.add(row) for row in rows) or len(rows) < limit:
                break
            query = query.where(LogLineRow.seq < rows[-1].seq)
        self.page.lines.reverse()

    async def grep(self, pattern: Pattern, first: int, last: int | None, context: int, max_matches: int) -> None:
        """Matches with context; scanning stops after MAX_SCAN_LINES to bound a costly pattern."""
        self._read_whole(first, last)
        self.page.matches = 0
        before: deque[_LineRow] = deque(maxlen=context)
        after_left = 0
        async with contextlib.aclosing(self._scan(first, last)) as rows:
            async for scanned, row in _numbered(rows):
                hit = scanned <= MAX_SCAN_LINES and pattern.search(row.text) is not None
                if scanned > MAX_SCAN_LINES or (hit and self.page.matches >= max_matches):
                    # More to find than the bounds allow: the caller continues from here.
                    self.page.truncated, self.page.next_seq = True, row.seq
                    return
                if hit:
                    self.page.matches += 1
                    emit, after_left = [*before, row], context
                    before.clear()
                elif after_left:
                    emit, after_left = [row], after_left - 1
                else:
                    before.append(row)
                    continue
                if not self._emit(emit, row if hit else None):
                    return

    def _emit(self, rows: list[_LineRow], match: _LineRow | None) -> bool:
        for row in rows:
            if not self.add(row):
                self.page.next_seq = row.seq
                if row is match and self.page.matches:
                    self.page.matches -= 1  # not shown: the caller finds it again from next_seq
                return False
        return True


async def _numbered(rows: AsyncIterator[_LineRow]) -> AsyncIterator[tuple[int, _LineRow]]:
    count = 0
    async for row in rows:
        count += 1
        yield count, row


async def follow(
    platform: Platform, execution_id: str, after_seq: int = 0, *, recheck: float = FOLLOW_RECHECK_SECONDS
) -> AsyncIterator[LogLine]:
    """Yield lines after ``after_seq`` as they are committed; end once the execution finished.

    Waits on ``platform.events`` between reads; ``recheck`` bounds a wait in case a writer in another
    process committed (its notifications do not reach this one).
    """
    while True:
        version = platform.events.version(execution_id)
        async with platform.db.session() as session:
            # Status first: lines are committed before a final status, so a terminal status read
            # here guarantees the lines query below sees every line.
            status = await session.scalar(select(ExecutionRow.status).where(ExecutionRow.id == execution_id))
            if status is None:
                raise NotFound(f"execution {execution_id!r} not found")
            query = select(*_COLUMNS).where(LogLineRow.execution_id == execution_id, LogLineRow.seq > after_seq)
            rows = (await session.execute(query.order_by(LogLineRow.seq).limit(CHUNK_LINES))).all()
        for row in rows:
            after_seq = row.seq
            yield _line(row)
        if len(rows) == CHUNK_LINES:
            continue
        if status in TERMINAL:
            return
        await platform.events.wait_any({execution_id: version}, recheck)

"""What the runner records about executions and steps: each change committed, then announced."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Executable, or_, select, update

from testgate.platform import executions
from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow, StepRow

OPEN = ("queued", "running")
Stop = Literal["abort", "taken_over"]
RECHECK_SECONDS = 1.0
ABORT_HEARTBEATS = 4  # the beat that sees the request, plus slack for a busy store


@dataclass(frozen=True)
class StepResult:
    status: str
    exit_code: int | None = None
    reason: str = ""


def duration_ms(started: datetime, finished: datetime) -> int:
    return int((finished - started).total_seconds() * 1000)


async def _commit(platform: Platform, execution_ids: Iterable[str], *statements: Executable) -> int:
    """Run ``statements`` in one transaction, wake watchers; the first statement's row count."""
    counts: list[int] = []
    async with platform.db.session() as session:
        for statement in statements:
            result = await session.execute(statement)
            counts.append(int(getattr(result, "rowcount", 0) or 0))
    for execution_id in execution_ids:
        await platform.events.notify(execution_id)
    return counts[0] if counts else 0


async def load(platform: Platform, execution_id: str) -> ExecutionRow | None:
    async with platform.db.session() as session:
        return await session.scalar(select(ExecutionRow).where(ExecutionRow.id == execution_id))


async def claim(platform: Platform, execution_id: str, runner_id: str) -> bool:
    """Take a queued execution into this runner's queue (its heartbeat now vouches for it)."""
    now = utcnow()
    statement = (
        update(ExecutionRow)
        .where(ExecutionRow.id == execution_id, ExecutionRow.status == "queued")
        .values(runner_id=runner_id, heartbeat_at=now)
    )
    return bool(await _commit(platform, [execution_id], statement))


async def mark_running(platform: Platform, execution_id: str, runner_id: str, now: datetime) -> bool:
    """queued -> running; False when it is no longer queued (aborted meanwhile)."""
    statement = (
        update(ExecutionRow)
        .where(ExecutionRow.id == execution_id, ExecutionRow.status == "queued")
        .values(
            status="running",
            started_at=now,
            runner_id=runner_id,
            heartbeat_at=now,
            attempts=ExecutionRow.attempts + 1,
        )
    )
    return bool(await _commit(platform, [execution_id], statement))


def _step(execution_id: str, index: int) -> Any:
    return update(StepRow).where(StepRow.execution_id == execution_id, StepRow.index == index)


async def step_started(platform: Platform, execution_id: str, index: int, now: datetime) -> None:
    await _commit(platform, [execution_id], _step(execution_id, index).values(status="running", started_at=now))


async def step_finished(
    platform: Platform, execution_id: str, index: int, result: StepResult, started: datetime
) -> None:
    now = utcnow()
    values = {
        "status": result.status,
        "exit_code": result.exit_code,
        "reason": result.reason,
        "finished_at": now,
        "duration_ms": duration_ms(started, now),
    }
    await _commit(platform, [execution_id], _step(execution_id, index).values(**values))


async def steps_skipped(platform: Platform, execution_id: str, indexes: list[int], reason: str) -> None:
    if not indexes:
        return
    statement = (
        update(StepRow)
        .where(StepRow.execution_id == execution_id, StepRow.index.in_(indexes))
        .values(status="skipped", reason=reason)
    )
    await _commit(platform, [execution_id], statement)


async def finish(
    platform: Platform, execution_id: str, status: str, reason: str, started: datetime, *, runner_id: str | None = None
) -> None:
    """running -> a final status, with its reason and duration (only while ``runner_id`` holds it, if given)."""
    now = utcnow()
    mine = () if runner_id is None else (ExecutionRow.runner_id == runner_id,)
    statement = (
        update(ExecutionRow)
        .where(ExecutionRow.id == execution_id, ExecutionRow.status == "running", *mine)
        .values(
            status=status,
            reason=reason,
            finished_at=now,
            duration_ms=duration_ms(started, now),
            heartbeat_at=now,
        )
    )
    await _commit(platform, [execution_id], statement)


async def heartbeat(platform: Platform, execution_ids: list[str], *, runner_id: str | None = None) -> dict[str, Stop]:
    """Vouch that this runner still holds these (queued or running) executions; those it must stop.

    "abort": another process asked to abort it. "taken_over" (only with ``runner_id``): it runs under
    another runner, which presumed this one lost; this one must stop without writing more.
    """
    open_ = (ExecutionRow.id.in_(execution_ids), ExecutionRow.status.in_(OPEN))
    mine = () if runner_id is None else (or_(ExecutionRow.status == "queued", ExecutionRow.runner_id == runner_id),)
    query = select(ExecutionRow.id, ExecutionRow.status, ExecutionRow.runner_id, ExecutionRow.abort_requested_at)
    async with platform.db.session() as session:
        await session.execute(update(ExecutionRow).where(*open_, *mine).values(heartbeat_at=utcnow()))
        # The same round trip answers whether this runner must stop any of them.
        rows = (await session.execute(query.where(*open_))).all()
    for execution_id in execution_ids:
        await platform.events.notify(execution_id)
    stops: dict[str, Stop] = {}
    for row in rows:
        if runner_id is not None and row.status == "running" and row.runner_id != runner_id:
            stops[row.id] = "taken_over"
        elif row.abort_requested_at is not None:
            stops[row.id] = "abort"
    return stops


async def request_abort(platform: Platform, execution_id: str) -> bool:
    """Ask whichever runner holds a running execution to abort it; False if it is not open."""
    statement = (
        update(ExecutionRow)
        .where(ExecutionRow.id == execution_id, ExecutionRow.status.in_(OPEN))
        .values(abort_requested_at=utcnow())
    )
    return bool(await _commit(platform, [execution_id], statement))


def abort_wait(platform: Platform) -> float:
    """How long a runner takes to act on an abort request: a heartbeat or so, then the kill grace."""
    runner = platform.settings.runner
    return ABORT_HEARTBEATS * runner.heartbeat_seconds + runner.kill_grace_seconds


async def abort_by_request(platform: Platform, execution_id: str, reason: str, *, wait: float | None = None) -> bool:
    """Abort through the store: a queued one at once (with ``reason``), a running one by its runner.

    The runner holding it, in any process, sees the request with its next heartbeat and records
    "aborted on request". Waits up to ``wait`` seconds (default ``abort_wait``) for the final status;
    False if the execution was not open.
    """
    async with platform.db.session() as session:
        queued = await executions.mark_aborted(session, execution_id, reason)
    if queued:
        await platform.events.notify(execution_id)
        return True
    if not await request_abort(platform, execution_id):
        return False
    await wait_finished(platform, execution_id, abort_wait(platform) if wait is None else wait)
    return True


async def wait_finished(platform: Platform, execution_id: str, timeout: float) -> str | None:
    """The execution's status once final, or its last status when ``timeout`` passed first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        seen = platform.events.snapshot([execution_id])
        row = await load(platform, execution_id)
        left = deadline - loop.time()
        if row is None or row.status in executions.TERMINAL or left <= 0:
            return row.status if row is not None else None
        # Woken by notifications (relayed from other processes too); the cap also catches missed ones.
        await platform.events.wait_any(seen, min(left, RECHECK_SECONDS))


async def close_steps(platform: Platform, execution_id: str, *, running: str, reason: str) -> None:
    """Settle steps left open: the running one gets ``running`` as status, queued ones are skipped."""
    where = (StepRow.execution_id == execution_id,)
    await _commit(
        platform,
        [execution_id],
        update(StepRow)
        .where(*where, StepRow.status == "running")
        .values(status=running, reason=reason, finished_at=utcnow()),
        update(StepRow).where(*where, StepRow.status == "queued").values(status="skipped", reason=reason),
    )

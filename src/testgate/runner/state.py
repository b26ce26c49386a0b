"""What the runner records about executions and steps: each change committed, then announced."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, select, update

from testgate.platform.context import Platform
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow, StepRow


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
        .values(status="running", started_at=now, runner_id=runner_id, heartbeat_at=now)
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


async def finish(platform: Platform, execution_id: str, status: str, reason: str, started: datetime) -> None:
    """running -> a final status, with its reason and duration."""
    now = utcnow()
    statement = (
        update(ExecutionRow)
        .where(ExecutionRow.id == execution_id, ExecutionRow.status == "running")
        .values(
            status=status,
            reason=reason,
            finished_at=now,
            duration_ms=duration_ms(started, now),
            heartbeat_at=now,
        )
    )
    await _commit(platform, [execution_id], statement)


async def heartbeat(platform: Platform, execution_ids: list[str]) -> None:
    """Vouch that this runner still holds these (queued or running) executions."""
    statement = (
        update(ExecutionRow)
        .where(ExecutionRow.id.in_(execution_ids), ExecutionRow.status.in_(("queued", "running")))
        .values(heartbeat_at=utcnow())
    )
    await _commit(platform, execution_ids, statement)


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

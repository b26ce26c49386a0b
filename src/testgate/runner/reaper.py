"""Settling executions sent to a broker whose worker is gone; the control plane's periodic reaper.

An execution sent to a broker queue (``queue`` set) is *lost* when it is running and its runner ran on
this host in a process that no longer exists, or its heartbeat is older than ``STALE_HEARTBEATS``
intervals (the reaper judges by heartbeat only, after ``REAPER_HEARTBEATS``). A lost execution is
aborted if an abort was asked for; run again when ``celery.on_lost`` is ``requeue`` and attempts
remain (by a worker holding its redelivered message, or re-sent by the reaper when it needs no
sensitive value, since only the lost message carried those); failed otherwise. The reaper also fails
an execution queued longer than ``celery.queue_timeout`` (when set). Workers and every control plane
apply the same rules; conditional updates let only the first one act.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

import structlog
from sqlalchemy import delete, select, update

from testgate.errors import InvalidInput, RunnerError
from testgate.platform import spec as specs
from testgate.platform.context import Platform
from testgate.platform.logs import SYSTEM_STEP
from testgate.runner import steps
from testgate.runner.reconcile import STALE_HEARTBEATS, Candidate, fail
from testgate.store.base import utcnow
from testgate.store.db import UNREACHABLE
from testgate.store.executions import ArtifactRow, ExecutionRow, LogLineRow, ResultRow, StepRow

log = structlog.get_logger("testgate.runner")

Settled = Literal["requeued", "failed", "aborted", "changed"]
Resend = Callable[[ExecutionRow], Awaitable[None]]
"""Sends a requeued execution's task again (with no sensitive values)."""

ABORTED_LOST = "aborted on request (its worker was lost before it could stop it)"
REAPER_HEARTBEATS = STALE_HEARTBEATS + 2


def candidate(row: ExecutionRow) -> Candidate:
    return Candidate(row.id, row.status, row.runner_id, row.heartbeat_at or row.started_at or row.created_at)


def is_lost(platform: Platform, row: ExecutionRow, *, by_heartbeat_only: bool = False) -> bool:
    """Whether a running execution's runner is gone: a dead process on this host, or silent too long.

    The reaper judges by heartbeat only, and later than workers do: a worker that receives the
    redelivered message settles it first, holding the sensitive values the reaper lacks.
    """
    if row.status != "running":
        return False
    beats = REAPER_HEARTBEATS if by_heartbeat_only else STALE_HEARTBEATS
    stale_before = utcnow() - timedelta(seconds=beats * platform.settings.runner.heartbeat_seconds)
    if by_heartbeat_only:
        return candidate(row).last_sign < stale_before
    return candidate(row).orphaned(socket.gethostname(), stale_before)


def needs_secrets(row: ExecutionRow) -> bool:
    """Whether running it takes sensitive values (which only its task message carried)."""
    try:
        steps.config_values(specs.validate(row.spec).spec, row.config, {})
    except RunnerError:
        return True
    except InvalidInput:
        return False  # it cannot run at all; a worker fails it with the reason
    return False


async def settle_lost(platform: Platform, row: ExecutionRow, *, have_secrets: bool, resend: Resend | None) -> Settled:
    """Abort, requeue or fail a lost execution per the settings; "changed" if someone else acted first."""
    config = platform.settings.celery
    lost_attempt = f"attempt {row.attempts}"
    if row.abort_requested_at is not None:
        done = await fail(platform, candidate(row), ABORTED_LOST, status="aborted")
        return "aborted" if done else "changed"
    if config.on_lost == "requeue" and row.attempts < config.max_attempts:
        if have_secrets or not needs_secrets(row):
            if not await requeue(platform, row, f"=== {lost_attempt} lost: its worker stopped; running it again ==="):
                return "changed"
            if resend is not None:
                await resend(row)
            return "requeued"
        reason = f"its worker was lost during {lost_attempt}; not requeued: its sensitive values were lost with it"
    elif config.on_lost == "requeue":
        reason = f"its worker was lost during {lost_attempt}, the last of {config.max_attempts} allowed"
    else:
        reason = f"its worker was lost during {lost_attempt} (on_lost=fail)"
    return "failed" if await fail(platform, candidate(row), reason) else "changed"


async def requeue(platform: Platform, row: ExecutionRow, note: str) -> bool:
    """running -> queued for another attempt: steps reset, results and artifact rows of the lost one gone."""
    now = utcnow()
    execution_id = row.id
    async with platform.db.session() as session:
        seq = await session.scalar(
            update(ExecutionRow)
            .where(
                ExecutionRow.id == execution_id,
                ExecutionRow.status == "running",
                ExecutionRow.runner_id == row.runner_id,
                ExecutionRow.attempts == row.attempts,
            )
            .values(
                status="queued",
                runner_id=None,
                heartbeat_at=now,
                started_at=None,
                **{f"tests_{name}": 0 for name in ("total", "passed", "failed", "skipped", "errored")},
                log_lines=ExecutionRow.log_lines + 1,
                log_bytes=ExecutionRow.log_bytes + len(note.encode()),
            )
            .returning(ExecutionRow.log_lines)
        )
        if seq is None:
            return False
        # The lost attempt's log stays (it shows what happened); its partial outcomes do not.
        session.add(LogLineRow(execution_id=execution_id, seq=seq, step=SYSTEM_STEP, ts=now, text=note))
        await session.execute(
            update(StepRow)
            .where(StepRow.execution_id == execution_id)
            .values(status="queued", exit_code=None, reason="", started_at=None, finished_at=None, duration_ms=None)
        )
        await session.execute(delete(ResultRow).where(ResultRow.execution_id == execution_id))
        await session.execute(delete(ArtifactRow).where(ArtifactRow.execution_id == execution_id))
    await platform.events.notify(execution_id)
    return True


async def sweep(platform: Platform, resend: Resend) -> list[str]:
    """One pass: settle lost executions and those queued too long; their ids."""
    query = select(ExecutionRow).where(
        ExecutionRow.status.in_(("queued", "running")), ExecutionRow.queue.is_not(None), ExecutionRow.source == "run"
    )
    async with platform.db.session() as session:
        rows = list(await session.scalars(query))
    settled: list[str] = []
    for row in rows:
        if row.status == "running" and is_lost(platform, row, by_heartbeat_only=True):
            outcome = await settle_lost(platform, row, have_secrets=False, resend=resend)
            if outcome != "changed":
                settled.append(row.id)
                log.warning("settled a lost execution", execution_id=row.id, outcome=outcome)
        elif row.status == "queued" and await _queued_too_long(platform, row):
            settled.append(row.id)
    return settled


async def _queued_too_long(platform: Platform, row: ExecutionRow) -> bool:
    timeout = platform.settings.celery.queue_timeout
    sent = row.heartbeat_at or row.created_at  # stamped when sent to the queue (again, after a requeue)
    if not timeout or sent > utcnow() - timedelta(seconds=timeout):
        return False
    reason = f"no worker took it from queue {row.queue} within {timeout:g}s (celery.queue_timeout)"
    return await fail(platform, candidate(row), reason)


async def run_reaper(platform: Platform, resend: Resend) -> None:
    """Sweep every heartbeat interval until cancelled."""
    while True:
        await asyncio.sleep(platform.settings.runner.heartbeat_seconds)
        try:
            await sweep(platform, resend)
        except UNREACHABLE:
            # A busy or briefly unreachable store: the next sweep tries again.
            log.warning("reaper sweep failed", exc_info=True)

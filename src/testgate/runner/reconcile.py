"""Orphans: executions left queued or running by a process that is gone, failed at start.

A runner id is ``host:pid:nonce``. An execution is orphaned when its runner ran on this host and its
process no longer exists, when its heartbeat is older than three heartbeat intervals, or when it is
queued with no runner at all (the sensitive values it needs lived only in a process's memory).
Executions held by another live process (another CLI on the same database) are left alone, and so are
executions sent to a broker queue: they wait there, and ``runner.reaper`` settles them.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import ColumnElement, select, update

from testgate.platform.context import Platform
from testgate.platform.executions import TERMINAL
from testgate.platform.logs import SYSTEM_STEP
from testgate.runner import state, workspace
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow, LogLineRow

log = structlog.get_logger("testgate.runner")

STALE_HEARTBEATS = 3
OPEN = ("queued", "running")


def new_runner_id(tag: str = "") -> str:
    """Names this process: its host, its pid, and a nonce telling executors in one process apart.

    ``tag`` (a worker's name) prefixes the nonce, so people can tell which worker ran an execution.
    """
    nonce = secrets.token_hex(4)
    if tag:
        nonce = f"{tag.replace(':', '_')[:80]}.{nonce}"
    return f"{socket.gethostname()}:{os.getpid()}:{nonce}"


@dataclass(frozen=True)
class RunnerIdentity:
    host: str
    pid: int

    @classmethod
    def parse(cls, runner_id: str | None) -> RunnerIdentity | None:
        without_nonce = (runner_id or "").rpartition(":")[0]
        host, _, pid = without_nonce.rpartition(":")
        return cls(host, int(pid)) if host and pid.isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (another user's counts)."""
    if pid <= 0:
        return False  # kill(0) and kill(-1) would signal groups, not a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A zombie has exited; it only waits to be reaped (an init that never reaps keeps it forever)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return False  # no /proc here, or it was reaped while we looked
    return bool(fields) and fields[0] in ("Z", "X")


@dataclass(frozen=True)
class Candidate:
    id: str
    status: str
    runner_id: str | None
    last_sign: datetime

    def orphaned(self, host: str, stale_before: datetime) -> bool:
        owner = RunnerIdentity.parse(self.runner_id)
        if owner is not None and owner.host == host and not pid_alive(owner.pid):
            return True
        # A hung or remote runner stopped beating; with no runner, the creator had time to submit it.
        return self.last_sign < stale_before


async def _candidates(platform: Platform) -> list[Candidate]:
    columns = (
        ExecutionRow.id,
        ExecutionRow.status,
        ExecutionRow.runner_id,
        ExecutionRow.heartbeat_at,
        ExecutionRow.started_at,
        ExecutionRow.created_at,
    )
    # Only executions a runner runs: an uploaded one ("upload") stays running until its CI finishes it.
    query = select(*columns).where(
        ExecutionRow.status.in_(OPEN), ExecutionRow.source == "run", ExecutionRow.queue.is_(None)
    )
    async with platform.db.session() as session:
        rows = (await session.execute(query)).all()
    return [Candidate(r.id, r.status, r.runner_id, r.heartbeat_at or r.started_at or r.created_at) for r in rows]


def _reason(status: str) -> str:
    if status == "queued":
        return "the server stopped before this execution started (reconciled at start)"
    return "the server stopped while this execution was running (reconciled at start)"


async def fail(platform: Platform, candidate: Candidate, reason: str, *, status: str = "failed") -> bool:
    """End one orphan with ``status``, unless someone changed it since it was read; the reason is logged."""
    now = utcnow()
    async with platform.db.session() as session:
        # Status and log line in one transaction, so a follower that sees the final status sees the line.
        seq = await session.scalar(
            update(ExecutionRow)
            .where(
                ExecutionRow.id == candidate.id,
                ExecutionRow.status == candidate.status,
                _same_runner(candidate.runner_id),
            )
            .values(
                status=status,
                reason=reason,
                finished_at=now,
                log_lines=ExecutionRow.log_lines + 1,
                log_bytes=ExecutionRow.log_bytes + len(reason.encode()),
            )
            .returning(ExecutionRow.log_lines)
        )
        if seq is None:
            return False
        session.add(LogLineRow(execution_id=candidate.id, seq=seq, step=SYSTEM_STEP, ts=now, text=reason))
    await state.close_steps(platform, candidate.id, running=status, reason=reason)
    await workspace.remove(workspace.workspace_path(platform.settings.workspaces_dir, candidate.id))
    return True


def _same_runner(runner_id: str | None) -> ColumnElement[bool]:
    if runner_id is None:
        return ExecutionRow.runner_id.is_(None)
    return ExecutionRow.runner_id == runner_id


async def reconcile(platform: Platform) -> list[str]:
    """Fail the orphaned executions in the store; their ids."""
    interval = platform.settings.runner.heartbeat_seconds
    stale_before = utcnow() - timedelta(seconds=STALE_HEARTBEATS * interval)
    host = socket.gethostname()
    failed: list[str] = []
    for candidate in await _candidates(platform):
        if candidate.orphaned(host, stale_before) and await fail(platform, candidate, _reason(candidate.status)):
            failed.append(candidate.id)
    if failed:
        log.warning("reconciled orphaned executions", count=len(failed), execution_ids=failed)
    return failed


async def remove_leftover_workspaces(platform: Platform) -> list[str]:
    """Remove the workspaces on this machine of executions that ended (or are gone); their ids.

    A runner that dies leaves its workspace behind, and the execution is settled elsewhere (by another
    replica's reaper, or run again on another worker), which cannot reach this machine's disk. So each
    runner sweeps its own workspace directory when it starts. Workspaces of executions still queued or
    running are left alone: another process on this machine (a CLI run, another worker) may be using them.
    """
    root = platform.settings.workspaces_dir
    names = await asyncio.to_thread(lambda: [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else [])
    if not names:
        return []
    async with platform.db.session(write=False) as session:
        rows = await session.execute(select(ExecutionRow.id, ExecutionRow.status).where(ExecutionRow.id.in_(names)))
        live = {execution_id for execution_id, status in rows if status not in TERMINAL}
    removed = [name for name in names if name not in live]
    for name in removed:
        await workspace.remove(workspace.workspace_path(root, name))
    if removed:
        log.info("removed workspaces of ended executions", count=len(removed))
    return removed

"""Crash reconciliation at start: orphans of gone processes fail; live processes keep theirs."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import pytest
from sqlalchemy import update

from testgate.platform import executions, tenancy
from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor
from testgate.runner.reconcile import RunnerIdentity, reconcile
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow, StepRow

if TYPE_CHECKING:
    from conftest import Harness

HOST = socket.gethostname()
STEPS = [{"name": "first", "shell": "true"}, {"name": "second", "shell": "true"}]


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


async def left_behind(
    runner: Harness, *, status: str, runner_id: str | None, heartbeat: datetime | None, created: datetime
) -> str:
    """An execution as a process would have left it in the store, its first step running."""
    created_row = await runner.create(STEPS)
    execution_id = created_row.row.id
    async with runner.platform.db.session() as session:
        await session.execute(
            update(ExecutionRow)
            .where(ExecutionRow.id == execution_id)
            .values(
                status=status,
                runner_id=runner_id,
                heartbeat_at=heartbeat,
                created_at=created,
                started_at=created if status == "running" else None,
            )
        )
        if status == "running":
            await session.execute(
                update(StepRow).where(StepRow.execution_id == execution_id, StepRow.index == 0).values(status="running")
            )
    return execution_id


async def test_a_running_execution_of_a_dead_process_on_this_host_is_failed_at_start(
    runner: Harness, platform: Platform, dead_pid: int
) -> None:
    now = utcnow()
    execution_id = await left_behind(
        runner, status="running", runner_id=f"{HOST}:{dead_pid}:0a1b", heartbeat=now, created=now
    )
    leftover = platform.settings.workspaces_dir / execution_id
    leftover.mkdir(parents=True)

    executor = LocalExecutor(platform)
    await executor.start()
    await executor.close()

    done = await runner.load(execution_id)
    assert done.row.status == "failed"
    assert done.row.reason == "the server stopped while this execution was running (reconciled at start)"
    assert done.statuses == ["failed", "skipped"]
    assert done.texts == [done.row.reason]
    assert done.row.log_lines == 1
    assert not leftover.exists()


async def test_a_running_execution_with_a_stale_heartbeat_elsewhere_is_failed(
    runner: Harness, platform: Platform
) -> None:
    long_ago = utcnow() - timedelta(hours=1)
    execution_id = await left_behind(
        runner, status="running", runner_id="other-host:4242:0a1b", heartbeat=long_ago, created=long_ago
    )

    assert await reconcile(platform) == [execution_id]
    assert await runner.status(execution_id) == "failed"


async def test_a_queued_execution_with_no_runner_is_failed_once_its_creator_had_time(
    runner: Harness, platform: Platform
) -> None:
    runner.tune(heartbeat_seconds=60)  # "fresh" must stay fresh however slow this machine is
    long_ago = utcnow() - timedelta(hours=1)
    # Nobody holds its sensitive values any more: they lived only in the creating process's memory.
    orphan = await left_behind(runner, status="queued", runner_id=None, heartbeat=None, created=long_ago)
    fresh = await left_behind(runner, status="queued", runner_id=None, heartbeat=None, created=utcnow())

    assert await reconcile(platform) == [orphan]
    done = await runner.load(orphan)
    assert done.row.reason == "the server stopped before this execution started (reconciled at start)"
    assert done.statuses == ["skipped", "skipped"]
    assert await runner.status(fresh) == "queued"


@pytest.mark.parametrize(
    "owner",
    [
        f"{HOST}:{os.getppid()}:0a1b",  # another live process on this host (another CLI)
        "other-host:4242:0a1b",  # a process elsewhere with a fresh heartbeat
    ],
    ids=["live-local-process", "fresh-remote-heartbeat"],
)
async def test_executions_held_by_a_live_process_are_left_alone(
    runner: Harness, platform: Platform, owner: str
) -> None:
    runner.tune(heartbeat_seconds=60)
    now = utcnow()
    running = await left_behind(runner, status="running", runner_id=owner, heartbeat=now, created=now)
    queued = await left_behind(runner, status="queued", runner_id=owner, heartbeat=now, created=now)

    assert await reconcile(platform) == []
    assert await runner.status(running) == "running"
    assert await runner.status(queued) == "queued"


async def test_an_uploaded_execution_is_not_a_runner_orphan(runner: Harness, platform: Platform) -> None:
    async with platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        env = await tenancy.environment_by_slug(session, org, "dev")
        uploaded = await executions.create_external(session, env, name="ci", tags={}, created_by="ci")
        uploaded.started_at = uploaded.created_at = utcnow() - timedelta(hours=1)

    # It runs in an external CI, which finishes it by uploading results.
    assert await reconcile(platform) == []
    assert await runner.status(uploaded.id) == "running"


async def test_the_heartbeat_of_a_running_execution_keeps_reconciliation_away(
    runner: Harness, platform: Platform, executor: LocalExecutor
) -> None:
    execution_id = await runner.start([{"name": "block", "shell": "echo started; sleep 1000"}])
    await runner.wait_for_line(execution_id, "started")
    first = (await runner.load(execution_id)).row.heartbeat_at
    assert first is not None

    with anyio.fail_after(10):
        while True:
            seen = platform.events.snapshot([execution_id])
            beat = (await runner.load(execution_id)).row.heartbeat_at
            if beat != first:
                break
            await platform.events.wait_any(seen, timeout=5)
    assert beat is not None
    assert beat > first

    assert await reconcile(platform) == []
    assert await runner.status(execution_id) == "running"
    await executor.abort(execution_id)


def test_a_runner_id_names_host_and_process() -> None:
    assert RunnerIdentity.parse("build-1:1234:abcd") == RunnerIdentity("build-1", 1234)
    assert RunnerIdentity.parse("garbage") is None
    assert RunnerIdentity.parse(None) is None


async def test_a_starting_runner_removes_the_workspaces_of_ended_executions_and_keeps_live_ones(
    runner: Harness, platform: Platform
) -> None:
    # docs/workflows.md: the workspace is removed. A killed worker's workspace stayed for good: its
    # execution was settled by another process, which cannot reach that machine's disk.
    from testgate.runner import workspace
    from testgate.runner.reconcile import remove_leftover_workspaces

    ended = await left_behind(runner, status="failed", runner_id=None, heartbeat=None, created=utcnow())
    live = await left_behind(runner, status="running", runner_id=f"{HOST}:1:w", heartbeat=utcnow(), created=utcnow())
    root = platform.settings.workspaces_dir
    for execution_id in (ended, live, "01ARZ3NDEKTSV4RRFFQ69G5FAV"):  # the last one's execution is gone
        path = await workspace.create(root, execution_id)
        (path / "out.txt").write_text("left behind")

    removed = await remove_leftover_workspaces(platform)

    assert sorted(removed) == sorted([ended, "01ARZ3NDEKTSV4RRFFQ69G5FAV"])
    assert sorted(p.name for p in root.iterdir()) == [live]

"""Timeouts and aborts stop a step's whole process group, grandchildren included."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import anyio
import pytest

from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor

if TYPE_CHECKING:
    from conftest import Harness

# `$$` of `sh -c` is the step's first process, whose id is its process group id.
SPAWN_GRANDCHILDREN = 'sleep 1000 & sleep 1000 & echo "pgid=$$"; wait'


def pgid_from(line: str) -> int:
    return int(line.rpartition("pgid=")[2])


def assert_group_gone(pgid: int) -> None:
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


async def test_a_step_timeout_kills_grandchildren(runner: Harness) -> None:
    done = await runner.run(
        [
            {"name": "hang", "shell": SPAWN_GRANDCHILDREN, "timeout": "0.5s"},
            {"name": "next", "shell": "echo next"},
            {"name": "cleanup", "shell": "echo cleanup", "condition": "always"},
        ]
    )

    assert done.row.status == "timed_out"
    assert done.row.reason == "step 'hang' timed out after 0.5s"
    assert done.statuses == ["timed_out", "skipped", "passed"]
    assert "--- step 'hang' timed out after 0.5s" in done.texts
    assert_group_gone(pgid_from(done.step_texts(0)[0]))


async def test_grandchildren_ignoring_sigterm_are_killed_after_the_grace_period(runner: Harness) -> None:
    runner.tune(kill_grace_seconds=0.2)
    # An ignored signal stays ignored across exec, so the sleeps ignore SIGTERM too.
    script = "trap '' TERM; " + SPAWN_GRANDCHILDREN
    done = await runner.run([{"name": "stubborn", "shell": script, "timeout": "0.3s"}])

    assert done.row.status == "timed_out"
    assert_group_gone(pgid_from(done.step_texts(0)[0]))


async def test_leftover_background_processes_are_stopped_when_a_step_ends(runner: Harness) -> None:
    done = await runner.run([{"name": "leaves", "shell": 'sleep 1000 & echo "pgid=$$"'}])

    assert done.row.status == "passed"
    assert_group_gone(pgid_from(done.step_texts(0)[0]))


async def test_abort_kills_the_process_group_and_skips_the_rest(runner: Harness, executor: LocalExecutor) -> None:
    execution_id = await runner.start(
        [
            {"name": "hang", "shell": SPAWN_GRANDCHILDREN},
            {"name": "cleanup", "shell": "echo cleanup", "condition": "always"},
        ]
    )
    line = await runner.wait_for_line(execution_id, "pgid=")

    with anyio.fail_after(10):
        assert await executor.abort(execution_id) is True

    done = await runner.load(execution_id)
    assert done.row.status == "aborted"
    assert done.row.reason == "aborted on request"
    assert done.statuses == ["aborted", "skipped"]
    assert done.row.finished_at is not None
    assert_group_gone(pgid_from(line))


async def test_abort_of_an_execution_not_held_here_returns_false(executor: LocalExecutor) -> None:
    assert await executor.abort("01unknown0000000000000000") is False


async def test_close_aborts_what_is_running(runner: Harness, platform: Platform) -> None:
    own = LocalExecutor(platform)
    await own.start()
    execution_id = await runner.start([{"name": "hang", "shell": SPAWN_GRANDCHILDREN}], executor=own)
    line = await runner.wait_for_line(execution_id, "pgid=")

    with anyio.fail_after(10):
        await own.close()

    done = await runner.load(execution_id)
    assert done.row.status == "aborted"
    assert done.row.reason == "aborted: the server is shutting down"
    assert_group_gone(pgid_from(line))
    assert not (platform.settings.workspaces_dir / execution_id).exists()

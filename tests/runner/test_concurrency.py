"""The concurrency limit: executions beyond ``settings.runner.concurrency`` wait queued."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
import pytest

from testgate.errors import RunnerError
from testgate.platform.context import Platform
from testgate.runner.local import LocalExecutor

if TYPE_CHECKING:
    from conftest import Harness

BLOCK = [{"name": "block", "shell": "echo started; sleep 1000"}]
QUICK = [{"name": "quick", "shell": "echo quick"}]


@pytest.fixture
async def single(platform: Platform, runner: Harness) -> AsyncIterator[LocalExecutor]:
    """An executor that runs one execution at a time."""
    runner.tune(concurrency=1)
    executor = LocalExecutor(platform)
    await executor.start()
    yield executor
    await executor.close()


async def test_an_execution_beyond_the_limit_waits_until_a_slot_frees(runner: Harness, single: LocalExecutor) -> None:
    first = await runner.start(BLOCK, executor=single)
    second = await runner.start(QUICK, executor=single)
    await runner.wait_for_line(first, "started")

    # The first holds the only slot for as long as it runs, so the second cannot have started.
    assert await runner.status(second) == "queued"
    assert set(single.held) == {first, second}

    with anyio.fail_after(10):
        await single.abort(first)
        await single.join(second)
    done = await runner.load(second)
    assert done.row.status == "passed"
    assert done.step_texts(0) == ["quick"]
    assert done.row.runner_id == single.runner_id


async def test_a_queued_execution_is_aborted_without_ever_running(runner: Harness, single: LocalExecutor) -> None:
    first = await runner.start(BLOCK, executor=single)
    second = await runner.start(QUICK, executor=single)
    await runner.wait_for_line(first, "started")

    with anyio.fail_after(10):
        assert await single.abort(second) is True

    done = await runner.load(second)
    assert done.row.status == "aborted"
    assert done.row.reason == "aborted on request"
    assert done.statuses == ["skipped"]
    assert done.lines == []
    assert done.row.started_at is None
    assert single.held == [first]


async def test_an_execution_cannot_be_submitted_twice_or_after_close(
    runner: Harness, platform: Platform, single: LocalExecutor
) -> None:
    first = await runner.start(BLOCK, executor=single)
    with pytest.raises(RunnerError, match="already submitted"):
        await single.submit(first, {})

    other = LocalExecutor(platform)
    with pytest.raises(RunnerError, match="not accepting"):
        await runner.start(QUICK, executor=other)

"""Aborts asked through the store reach whichever runner holds the execution (here a LocalExecutor,
as when a CLI runs it and a server receives the abort)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import anyio
import pytest
from tests.runner_celery.conftest import create_execution

from testgate.platform.context import Platform
from testgate.platform.logs import follow
from testgate.runner import state
from testgate.runner.local import LocalExecutor

SPAWN_GRANDCHILDREN = 'sleep 1000 & sleep 1000 & echo "pgid=$$"; wait'


@pytest.fixture
async def local(platform: Platform) -> AsyncIterator[LocalExecutor]:
    executor = LocalExecutor(platform)
    await executor.start()
    platform.executor = executor
    yield executor
    await executor.close()


async def first_line_with(platform: Platform, execution_id: str, needle: str) -> str:
    with anyio.fail_after(30):
        async with contextlib.aclosing(follow(platform, execution_id, recheck=0.5)) as lines:
            async for line in lines:
                if needle in line.text:
                    return line.text
    raise AssertionError(f"no line with {needle!r}")


async def test_an_abort_requested_in_the_store_stops_a_running_local_execution(
    platform: Platform, local: LocalExecutor
) -> None:
    created = await create_execution(platform, [{"name": "hang", "shell": SPAWN_GRANDCHILDREN}])
    await local.submit(created.row.id, {})
    pgid = int((await first_line_with(platform, created.row.id, "pgid=")).rpartition("=")[2])

    # What another process does: it does not hold the job, so it asks through the store.
    assert await state.abort_by_request(platform, created.row.id, "unused for a running one", wait=15) is True

    row = await state.load(platform, created.row.id)
    assert row is not None
    assert (row.status, row.reason) == ("aborted", "aborted on request")
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


async def test_an_abort_requested_in_the_store_ends_a_queued_execution_at_once(platform: Platform) -> None:
    created = await create_execution(platform, [{"name": "x", "shell": "true"}])

    assert await state.abort_by_request(platform, created.row.id, "aborted by alice", wait=0) is True

    row = await state.load(platform, created.row.id)
    assert row is not None
    assert (row.status, row.reason) == ("aborted", "aborted by alice")


async def test_an_abort_of_a_finished_execution_is_refused(platform: Platform, local: LocalExecutor) -> None:
    created = await create_execution(platform, [{"name": "x", "shell": "true"}])
    await local.submit(created.row.id, {})
    await local.join(created.row.id)

    assert await state.abort_by_request(platform, created.row.id, "too late", wait=0) is False

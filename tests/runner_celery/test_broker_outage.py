"""A broker that is down or silent: submit fails visibly and leaves nothing queued that no queue holds."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select
from tests.runner_celery.conftest import create_execution

from testgate.config import CelerySettings
from testgate.errors import InvalidInput, RunnerError
from testgate.platform.context import Platform
from testgate.runner.distributed import CeleryExecutor
from testgate.store.executions import ExecutionRow, LogLineRow, StepRow

STEPS = [{"name": "first", "shell": "true"}, {"name": "second", "shell": "true"}]


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A local port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


async def executor_for(platform: Platform, broker_url: str, **celery: Any) -> CeleryExecutor:
    platform.settings.celery = CelerySettings(broker_url=broker_url, queue_prefix="tgoutage", **celery)
    executor = CeleryExecutor(platform)
    await executor.start()
    return executor


@pytest.fixture
async def down(platform: Platform, closed_port: int) -> AsyncIterator[CeleryExecutor]:
    executor = await executor_for(platform, f"amqp://guest:guest@127.0.0.1:{closed_port}//")
    yield executor
    await executor.close()


async def stored(platform: Platform, execution_id: str) -> tuple[ExecutionRow, list[str], list[str]]:
    async with platform.db.session() as session:
        row = await session.get(ExecutionRow, execution_id)
        assert row is not None
        statuses = await session.scalars(
            select(StepRow.status).where(StepRow.execution_id == execution_id).order_by(StepRow.index)
        )
        lines = await session.scalars(select(LogLineRow.text).where(LogLineRow.execution_id == execution_id))
        return row, list(statuses), list(lines)


async def test_a_submit_with_the_broker_down_fails_the_execution_and_raises(
    platform: Platform, down: CeleryExecutor
) -> None:
    created = await create_execution(platform, STEPS)

    with pytest.raises(RunnerError, match=r"^broker unavailable: .*refused") as raised:
        await down.submit(created.row.id, {})

    row, steps, lines = await stored(platform, created.row.id)
    assert (row.status, row.reason) == ("failed", raised.value.message)
    assert row.queue == "tgoutage.default"
    assert steps == ["skipped", "skipped"]
    assert lines == [raised.value.message]


async def test_a_broker_that_never_answers_is_bounded_by_the_publish_timeout(
    platform: Platform, silent_port: int
) -> None:
    executor = await executor_for(platform, f"amqp://guest:guest@127.0.0.1:{silent_port}//", publish_timeout=1.0)
    created = await create_execution(platform, STEPS)

    with pytest.raises(RunnerError, match=r"^broker unavailable"):
        await executor.submit(created.row.id, {})

    row, _, _ = await stored(platform, created.row.id)
    assert row.status == "failed"
    await executor.close()


async def test_an_execution_targeting_more_labels_than_a_worker_can_have_fails_at_submit(
    platform: Platform, down: CeleryExecutor
) -> None:
    match = {f"k{i}": "v" for i in range(5)}
    created = await create_execution(platform, STEPS, target={"match": match})

    with pytest.raises(InvalidInput, match="target cannot be run") as refused:  # a 422, not a 503 to retry
        await down.submit(created.row.id, {})

    assert "at most 4" in str(refused.value)
    row, _, _ = await stored(platform, created.row.id)
    assert row.status == "failed"
    assert row.reason.startswith("the execution cannot be routed to a worker: this workflow's target cannot be run")
    assert "spec.target.match: names 5 labels" in row.reason
    assert row.queue is None


async def test_a_submit_of_an_execution_that_is_not_queued_is_refused(platform: Platform, down: CeleryExecutor) -> None:
    with pytest.raises(RunnerError, match="is not queued"):
        await down.submit("01unknown0000000000000000", {})


async def test_the_control_plane_creates_a_private_secrets_key_file(platform: Platform, down: CeleryExecutor) -> None:
    key_file = platform.settings.data_dir / "celery-secrets.key"

    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_bytes().strip()) == 44

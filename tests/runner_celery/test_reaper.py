"""The reaper's rules on a real store (SQLite), the broker replaced by a recorder of re-sent executions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from tests.runner_celery.conftest import create_execution

from testgate.config import CelerySettings
from testgate.platform.context import Platform
from testgate.runner import state
from testgate.runner.reaper import sweep
from testgate.store.base import utcnow
from testgate.store.executions import ExecutionRow

STEPS = [{"name": "first", "shell": "true"}, {"name": "second", "shell": "true"}]
SECRET = {"config": {"token": {"type": "string", "sensitive": True}}}
REMOTE = "worker-host:4242:w1@worker-host.0a1b"  # another machine: only its heartbeat tells


class Resent:
    """Stands in for the broker: the executions the reaper sent again."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, row: ExecutionRow) -> None:
        self.ids.append(row.id)


async def left_running(platform: Platform, *, silent_for: float, **create: Any) -> str:
    """An execution a worker was running and stopped vouching for ``silent_for`` seconds ago."""
    created = await create_execution(platform, STEPS, **create)
    then = utcnow() - timedelta(seconds=silent_for)
    await state.mark_running(platform, created.row.id, REMOTE, then)
    async with platform.db.session() as session:
        await session.execute(
            update(ExecutionRow).where(ExecutionRow.id == created.row.id).values(queue="tg.default", heartbeat_at=then)
        )
    return created.row.id


def policy(platform: Platform, **celery: Any) -> None:
    platform.settings.celery = CelerySettings(**celery)


async def test_a_silent_worker_with_on_lost_fail_fails_its_execution(platform: Platform) -> None:
    policy(platform, on_lost="fail")
    lost = await left_running(platform, silent_for=60)
    fresh = await left_running(platform, silent_for=0, name="fresh")

    assert await sweep(platform, Resent()) == [lost]

    row = await state.load(platform, lost)
    assert row is not None
    assert (row.status, row.reason) == ("failed", "its worker was lost during attempt 1 (on_lost=fail)")
    untouched = await state.load(platform, fresh)
    assert untouched is not None
    assert untouched.status == "running"


async def test_with_on_lost_requeue_an_execution_without_secrets_is_sent_again(platform: Platform) -> None:
    policy(platform, on_lost="requeue")
    lost = await left_running(platform, silent_for=60)
    resent = Resent()

    await sweep(platform, resent)

    row = await state.load(platform, lost)
    assert row is not None
    assert (row.status, row.runner_id, row.attempts, row.log_lines) == ("queued", None, 1, 1)
    assert resent.ids == [lost]


async def test_an_execution_needing_secrets_cannot_be_requeued_by_the_reaper(platform: Platform) -> None:
    policy(platform, on_lost="requeue")
    lost = await left_running(platform, silent_for=60, values={"token": "x"}, **SECRET)
    resent = Resent()

    await sweep(platform, resent)

    row = await state.load(platform, lost)
    assert row is not None
    assert row.status == "failed"
    assert row.reason.endswith("not requeued: its sensitive values were lost with it")
    assert resent.ids == []


async def test_the_last_allowed_attempt_is_not_requeued(platform: Platform) -> None:
    policy(platform, on_lost="requeue", max_attempts=1)
    lost = await left_running(platform, silent_for=60)

    await sweep(platform, Resent())

    row = await state.load(platform, lost)
    assert row is not None
    assert (row.status, row.reason) == ("failed", "its worker was lost during attempt 1, the last of 1 allowed")


async def test_an_abort_asked_for_before_the_worker_was_lost_ends_it_aborted(platform: Platform) -> None:
    policy(platform, on_lost="requeue")
    lost = await left_running(platform, silent_for=60)
    assert await state.request_abort(platform, lost)

    await sweep(platform, Resent())

    row = await state.load(platform, lost)
    assert row is not None
    assert row.status == "aborted"


@pytest.mark.parametrize(("timeout", "expected"), [(0, "queued"), (30, "failed")])
async def test_an_execution_no_worker_takes_fails_only_with_a_queue_timeout(
    platform: Platform, timeout: float, expected: str
) -> None:
    policy(platform, queue_timeout=timeout)
    created = await create_execution(platform, STEPS)
    async with platform.db.session() as session:
        sent = utcnow() - timedelta(minutes=5)
        await session.execute(
            update(ExecutionRow)
            .where(ExecutionRow.id == created.row.id)
            .values(queue="tg.match.os=plan9", heartbeat_at=sent)
        )

    await sweep(platform, Resent())

    row = await state.load(platform, created.row.id)
    assert row is not None
    assert row.status == expected


async def test_the_heartbeat_tells_a_runner_it_was_taken_over_or_asked_to_abort(platform: Platform) -> None:
    created = await create_execution(platform, STEPS)
    await state.mark_running(platform, created.row.id, "host:1:mine", utcnow())

    assert await state.heartbeat(platform, [created.row.id], runner_id="host:1:mine") == {}
    assert await state.heartbeat(platform, [created.row.id], runner_id="host:2:other") == {created.row.id: "taken_over"}
    await state.request_abort(platform, created.row.id)
    assert await state.heartbeat(platform, [created.row.id], runner_id="host:1:mine") == {created.row.id: "abort"}

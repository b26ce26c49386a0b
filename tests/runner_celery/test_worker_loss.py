"""A worker killed with SIGKILL mid-run: the execution is requeued or failed per ``celery.on_lost``,
by the worker that receives the redelivered message or, when none does, by the reaper."""

from __future__ import annotations

from typing import Any

import pytest
from tests.runner_celery.conftest import (
    ControlPlane,
    Deploy,
    Workers,
    assert_dense,
    control_plane,
    lines_of,
    numbered,
    ready,
)

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

SECRET = {"config": {"token": {"type": "string", "sensitive": True}}}
TOKEN_ENV = {"TOKEN": "{{ config.token }}"}
LOST_NOTE = "=== attempt 1 lost: its worker stopped; running it again ==="


def worker_of(runner_id: str | None) -> str:
    return (runner_id or "").split(":", 2)[2].rpartition(".")[0]


async def kill_its_worker(cp: ControlPlane, workers: Workers, execution_id: str) -> str:
    """Wait until the execution has logged a few lines on some worker, then SIGKILL that worker."""
    row = await cp.wait_until(execution_id, lambda row: row.status == "running" and row.log_lines >= 5)
    victim = worker_of(row.runner_id)
    workers.kill(victim)
    return victim


async def test_a_killed_workers_execution_is_requeued_to_the_other_worker_with_its_secret(deploy: Deploy) -> None:
    deployment, workers = await deploy(on_lost="requeue")
    workers.start("a@tests")
    workers.start("b@tests")
    await ready(deployment, "a@tests", "b@tests")
    step: dict[str, Any] = {"name": "count", "shell": f'echo "token=$TOKEN"; {numbered(60, 0.04)}', "env": TOKEN_ENV}

    async with control_plane(deployment) as cp:
        # The sensitive value means only a worker holding the redelivered message can run it again.
        execution_id = await cp.start([step], values={"token": "hunter2-hunter2"}, **SECRET)
        victim = await kill_its_worker(cp, workers, execution_id)
        done = await cp.finished(execution_id)

    assert done.row.status == "passed", done.row.reason
    assert done.row.attempts == 2
    assert worker_of(done.row.runner_id) == ({"a@tests", "b@tests"} - {victim}).pop()
    assert_dense(done)
    rerun = done.lines[done.texts.index(LOST_NOTE) + 1 :]
    assert [line.text for line in rerun if line.step == 0] == ["token=***", *lines_of(60)]
    assert "hunter2-hunter2" not in "\n".join(done.texts)


async def test_with_on_lost_fail_the_other_worker_fails_it_and_keeps_working(deploy: Deploy) -> None:
    deployment, workers = await deploy(on_lost="fail")
    workers.start("a@tests")
    workers.start("b@tests")
    await ready(deployment, "a@tests", "b@tests")

    async with control_plane(deployment) as cp:
        execution_id = await cp.start(
            [{"name": "count", "shell": numbered(60, 0.04)}, {"name": "next", "shell": "true"}]
        )
        await kill_its_worker(cp, workers, execution_id)
        done = await cp.finished(execution_id)
        after = await cp.finished(await cp.start([{"name": "quick", "shell": "echo still-here"}], name="after"))

    assert (done.row.status, done.row.reason) == ("failed", "its worker was lost during attempt 1 (on_lost=fail)")
    assert [s.status for s in done.steps] == ["failed", "skipped"]
    assert done.row.attempts == 1
    assert_dense(done)
    assert (after.row.status, after.step_texts(0)) == ("passed", ["still-here"])


async def test_with_no_worker_left_the_reaper_requeues_what_it_can_and_fails_the_rest(deploy: Deploy) -> None:
    deployment, workers = await deploy(on_lost="requeue")
    workers.start("a@tests", concurrency=2)
    await ready(deployment, "a@tests")
    slow = numbered(60, 0.04)

    async with control_plane(deployment) as cp:
        plain = await cp.start([{"name": "count", "shell": slow}], name="plain")
        secret = await cp.start(
            [{"name": "count", "shell": slow, "env": TOKEN_ENV}], name="secret", values={"token": "t0ps3cret"}, **SECRET
        )
        await cp.wait_until(secret, lambda row: row.status == "running" and row.log_lines >= 5)
        await kill_its_worker(cp, workers, plain)

        requeued = await cp.wait_until(plain, lambda row: row.status == "queued")
        failed = await cp.finished(secret)
        workers.start("b@tests")
        done = await cp.finished(plain)

    assert requeued.attempts == 1
    assert failed.row.status == "failed"
    assert failed.row.reason == (
        "its worker was lost during attempt 1; not requeued: its sensitive values were lost with it"
    )
    assert (done.row.status, done.row.attempts, worker_of(done.row.runner_id)) == ("passed", 2, "b@tests")
    assert LOST_NOTE in done.texts
    assert_dense(done)

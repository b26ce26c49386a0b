"""The Celery executor over a Redis broker, live notifications over Redis pub/sub."""

from __future__ import annotations

import contextlib

import anyio
import pytest
from tests.runner_celery.conftest import Deploy, assert_dense, control_plane, lines_of, numbered, ready

from testgate.platform.logs import follow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_an_execution_runs_on_a_worker_over_redis_and_its_lines_stream_live(deploy: Deploy) -> None:
    deployment, workers = await deploy(broker="redis")
    workers.start("r@tests")
    await ready(deployment, "r@tests")
    config = {"config": {"token": {"type": "string", "sensitive": True}}}
    step = {"name": "count", "shell": f'echo "t=$T"; {numbered(5, 0.2)}', "env": {"T": "{{ config.token }}"}}

    async with control_plane(deployment) as cp:
        execution_id = await cp.start([step], values={"token": "redis-s3cret"}, **config)
        streamed: list[str] = []
        # A recheck longer than the bound: only notifications relayed over Redis deliver in time.
        with anyio.fail_after(20):
            async with contextlib.aclosing(follow(cp.platform, execution_id, recheck=60)) as lines:
                async for line in lines:
                    streamed.append(line.text)
        done = await cp.finished(execution_id)

    assert done.row.status == "passed"
    assert done.step_texts(0) == ["t=***", *lines_of(5)]
    assert streamed == done.texts
    assert_dense(done)

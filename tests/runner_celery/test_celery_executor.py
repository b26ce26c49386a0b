"""The Celery executor end to end: RabbitMQ, PostgreSQL and two real worker processes (one with gpu=true)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator

import anyio
import kombu
import pytest
from tests.runner_celery.conftest import (
    ControlPlane,
    Deployment,
    Workers,
    assert_dense,
    control_plane,
    deployed,
    lines_of,
    numbered,
    wait_ready,
)

from testgate.platform import artifacts, results
from testgate.platform.logs import follow
from testgate.runner.celery_app import SecretBox, default_queue, label_queue

pytestmark = [pytest.mark.postgres, pytest.mark.rabbitmq]

PLAIN, GPU = "plain@tests", "gpu@tests"
SPAWN_GRANDCHILDREN = 'sleep 1000 & sleep 1000 & echo "pgid=$$"; wait'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, Workers]]:
    """One deployment and its two workers for the whole module: starting workers is the slow part."""
    with deployed(tmp_path_factory.mktemp("cluster") / "deployment") as (deployment, workers):
        workers.start(PLAIN)
        workers.start(GPU, {"gpu": "true"})
        wait_ready(deployment, PLAIN, GPU)
        yield deployment, workers


@pytest.fixture
async def cp(cluster: tuple[Deployment, Workers]) -> AsyncIterator[ControlPlane]:
    async with control_plane(cluster[0]) as plane:
        yield plane


def worker_of(runner_id: str | None) -> str:
    """The worker name a runner id carries (host:pid:<name>.<nonce>)."""
    return (runner_id or "").split(":", 2)[2].rpartition(".")[0]


async def test_executions_spread_across_both_workers_and_each_step_line_is_stored_once(cp: ControlPlane) -> None:
    ids = [await cp.start([{"name": "count", "shell": numbered(30, 0.02)}]) for _ in range(6)]

    done = [await cp.finished(execution_id) for execution_id in ids]

    assert [d.row.status for d in done] == ["passed"] * 6
    assert {worker_of(d.row.runner_id) for d in done} == {PLAIN, GPU}
    for finished in done:
        assert finished.step_texts(0) == lines_of(30)
        assert_dense(finished)
        assert finished.row.attempts == 1
        assert finished.row.queue == default_queue(cp.platform.settings.celery.queue_prefix)


async def test_a_workflow_targeting_gpu_runs_only_on_the_gpu_worker(cp: ControlPlane) -> None:
    prefix = cp.platform.settings.celery.queue_prefix
    gpu = {"target": {"match": {"gpu": "true"}}}
    ids = [await cp.start([{"name": "train", "shell": "echo on-gpu"}], name="train", **gpu) for _ in range(3)]
    # No worker advertises os=plan9: it waits in its own queue, untouched.
    nowhere = await cp.start([{"name": "x", "shell": "true"}], name="plan9", target={"match": {"os": "plan9"}})

    done = [await cp.finished(execution_id) for execution_id in ids]

    assert [worker_of(d.row.runner_id) for d in done] == [GPU] * 3
    assert {d.row.queue for d in done} == {label_queue(prefix, {"gpu": "true"})}
    stranded = await cp.row(nowhere)
    assert (stranded.status, stranded.queue) == ("queued", label_queue(prefix, {"os": "plan9"}))
    assert await cp.executor.abort(nowhere) is True
    assert (await cp.row(nowhere)).status == "aborted"


async def test_abort_reaches_the_worker_and_kills_the_steps_process_group(cp: ControlPlane) -> None:
    execution_id = await cp.start(
        [{"name": "hang", "shell": SPAWN_GRANDCHILDREN}, {"name": "after", "shell": "echo after"}]
    )
    line = await wait_for_line(cp, execution_id, "pgid=")
    pgid = int(line.rpartition("pgid=")[2])

    assert await cp.executor.abort(execution_id) is True

    done = await cp.finished(execution_id)
    assert (done.row.status, done.row.reason) == ("aborted", "aborted on request")
    assert [s.status for s in done.steps] == ["aborted", "skipped"]
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


async def test_sensitive_values_travel_sealed_and_are_masked_in_the_log(
    cp: ControlPlane, cluster: tuple[Deployment, Workers]
) -> None:
    secret = "s3cr3t-Value-42"
    config = {"config": {"token": {"type": "string", "sensitive": True}}}
    step = {"name": "show", "shell": 'echo "token=$TOKEN"', "env": {"TOKEN": "{{ config.token }}"}}
    parked = await cp.start(
        [step], name="parked", values={"token": secret}, target={"match": {"os": "sealed"}}, **config
    )
    ran = await cp.start([step], name="shown", values={"token": secret}, **config)

    queue = label_queue(cluster[0].prefix, {"os": "sealed"})  # no worker consumes it
    body = await anyio.to_thread.run_sync(raw_message, cluster[0], queue)
    assert secret.encode() not in body
    args, _kwargs, _embed = json.loads(body)
    assert args[0] == parked
    assert SecretBox([cluster[0].key.encode()]).open(args[1], parked) == {"token": secret}
    done = await cp.finished(ran)
    assert done.step_texts(0) == ["token=***"]
    assert done.row.config == {"token": "***"}
    await cp.executor.abort(parked)


async def test_artifacts_and_junit_results_of_a_worker_run_are_read_back_by_the_control_plane(
    cp: ControlPlane,
) -> None:
    report = '<testsuite name="s"><testcase classname="c" name="ok"/><testcase classname="c" name="also"/></testsuite>'
    script = f"mkdir -p reports && printf '%s' '{report}' > reports/junit.xml && echo kept > reports/out.txt"
    execution_id = await cp.start(
        [{"name": "test", "shell": script}],
        name="reports",
        artifacts={"paths": ["reports/**"]},
        results={"junit": ["reports/*.xml"]},
    )

    done = await cp.finished(execution_id)

    assert (done.row.status, done.row.tests_total, done.row.tests_passed) == ("passed", 2, 2)
    async with cp.platform.db.session() as session:
        page = await results.list_results(session, execution_id)
        kept = await artifacts.read_artifact(cp.platform, session, execution_id, "reports/out.txt")
    assert [r.name for r in page.results] == ["ok", "also"]
    assert kept.content == "kept\n"


async def test_a_control_plane_restart_does_not_disturb_running_executions(
    cluster: tuple[Deployment, Workers],
) -> None:
    async with control_plane(cluster[0]) as first:
        execution_id = await first.start([{"name": "count", "shell": numbered(40, 0.04)}])
        await first.wait_until(execution_id, lambda row: row.log_lines >= 5)

    async with control_plane(cluster[0]) as second:
        done = await second.finished(execution_id)

    assert done.row.status == "passed"
    assert done.step_texts(0) == lines_of(40)
    assert_dense(done)


async def test_live_lines_from_a_worker_wake_a_follower_in_the_control_plane(cp: ControlPlane) -> None:
    execution_id = await cp.start([{"name": "count", "shell": numbered(6, 0.2)}])
    seen: list[str] = []

    # A recheck longer than the bound: only relayed notifications can deliver the lines in time.
    with anyio.fail_after(15):
        async with contextlib.aclosing(follow(cp.platform, execution_id, recheck=60)) as lines:
            async for line in lines:
                seen.append(line.text)

    assert [text for text in seen if text.startswith("line")] == lines_of(6)


async def wait_for_line(cp: ControlPlane, execution_id: str, needle: str) -> str:
    with anyio.fail_after(30):
        async with contextlib.aclosing(follow(cp.platform, execution_id, recheck=0.5)) as lines:
            async for line in lines:
                if needle in line.text:
                    return line.text
    raise AssertionError(f"the execution finished without logging {needle!r}")


def raw_message(deployment: Deployment, queue: str) -> bytes:
    """The body of the message waiting in ``queue``, as the broker holds it (put back after reading)."""
    with kombu.Connection(deployment.broker_url) as connection:
        bound = kombu.Queue(queue, kombu.Exchange(queue), routing_key=queue, no_declare=True)(connection.channel())
        deadline = time.monotonic() + 10
        while (message := bound.get(no_ack=False)) is None:
            # Published on another connection: the broker may route it a moment later.
            assert time.monotonic() < deadline, f"no message in {queue}"
            time.sleep(0.05)
        body = message.body if isinstance(message.body, bytes) else message.body.encode()
        message.requeue()
    return body

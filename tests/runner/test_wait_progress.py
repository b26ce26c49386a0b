"""``wait_for_executions``' progress notifications: they only rise (MCP 2025-11-25, basic/utilities/progress:
"The progress value MUST increase with each notification"), come when an execution finishes and every
``PROGRESS_EVERY`` seconds meanwhile, not on every log line, and end at the total."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from tests.runner.conftest import Harness

from testgate.operations import executions as execution_ops
from testgate.operations.context import Call
from testgate.operations.dispatch import dispatch
from testgate.platform.context import Platform

CHATTY = [{"name": "chatty", "shell": "for i in $(seq 1 30); do echo line $i; sleep 0.05; done"}]


async def test_progress_rises_on_every_notification_and_ends_at_the_total(
    runner: Harness, platform: Platform, call: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(execution_ops, "PROGRESS_EVERY", 0.3)
    finished = (await runner.run([{"name": "quick", "shell": "echo done"}])).row.id
    running = await runner.start(CHATTY)  # some 30 log lines, each one wakes the waiter
    reports: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        reports.append((value, total, message))

    out = await dispatch(
        platform, replace(call, progress=progress), "execution.wait", {"ids": [running, finished], "timeout": 30}
    )

    assert out.model_dump()["finished"] is True
    values = [value for value, _, _ in reports]
    assert all(later > earlier for earlier, later in itertools.pairwise(values)), values
    assert reports[0][1:] == (2, "1 of 2 finished")
    assert 1 <= values[0] < 2
    assert reports[-1] == (2, 2, "2 of 2 finished")
    # Not one per log line (the old behaviour sent about 30): the start, a few keep-alives, the end.
    assert 2 <= len(reports) <= 12, reports


async def test_an_execution_named_twice_is_waited_for_and_counted_once(
    runner: Harness, platform: Platform, call: Call
) -> None:
    done = (await runner.run([{"name": "quick", "shell": "echo done"}])).row
    reports: list[tuple[float, float | None, str | None]] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        reports.append((value, total, message))

    twice = {"ids": [done.id, f"{done.workflow_name}#{done.number}", done.id], "timeout": 5}
    out = (await dispatch(platform, replace(call, progress=progress), "execution.wait", twice)).model_dump()

    # By its id twice and by its name#number: one execution, waited for and counted once (it was three).
    assert [e["id"] for e in out["executions"]] == [done.id]
    assert reports[-1] == (1, 1, "1 of 1 finished")

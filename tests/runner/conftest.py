"""Runner fixtures: a started LocalExecutor and a harness that creates, runs, waits for and loads executions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import yaml
from sqlalchemy import select

from testgate.platform import executions, tenancy, workflows
from testgate.platform.context import Platform
from testgate.platform.executions import TERMINAL
from testgate.platform.logs import follow
from testgate.runner.local import LocalExecutor
from testgate.store.executions import ExecutionRow, LogLineRow, StepRow

WAIT_SECONDS = 30


def definition(steps: list[dict[str, Any]], name: str = "wf", **spec: Any) -> str:
    """A workflow YAML document with these steps and other spec fields."""
    document = {"kind": "TestWorkflow", "metadata": {"name": name}, "spec": {**spec, "steps": steps}}
    return yaml.safe_dump(document, sort_keys=False)


@dataclass
class Finished:
    row: ExecutionRow
    steps: list[StepRow]
    lines: list[LogLineRow]

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    def step_texts(self, index: int) -> list[str]:
        return [line.text for line in self.lines if line.step == index]

    @property
    def statuses(self) -> list[str]:
        return [step.status for step in self.steps]


class Harness:
    """Drives executions of one test's platform through an executor."""

    def __init__(self, platform: Platform, executor: LocalExecutor) -> None:
        self.platform = platform
        self.executor = executor

    def tune(self, **runner: Any) -> None:
        """Change runner settings (jobs read them when they run)."""
        settings = self.platform.settings
        settings.runner = settings.runner.model_copy(update=runner)

    async def create(
        self, steps: list[dict[str, Any]], *, values: dict[str, Any] | None = None, **spec: Any
    ) -> executions.Created:
        async with self.platform.db.session() as session:
            org = await tenancy.organization_by_slug(session, "acme")
            env = await tenancy.environment_by_slug(session, org, "dev")
            document = definition(steps, **spec)
            max_bytes = self.platform.settings.max_spec_bytes
            saved = await workflows.save(session, env, document, max_bytes=max_bytes, mode="apply")
            return await executions.create(session, env, saved.row, config=values or {}, tags={}, created_by="test")

    async def start(
        self,
        steps: list[dict[str, Any]],
        *,
        executor: LocalExecutor | None = None,
        values: dict[str, Any] | None = None,
        **spec: Any,
    ) -> str:
        """Create and submit an execution; its id."""
        created = await self.create(steps, values=values, **spec)
        await (executor or self.executor).submit(created.row.id, created.secrets)
        return created.row.id

    async def run(self, steps: list[dict[str, Any]], *, values: dict[str, Any] | None = None, **spec: Any) -> Finished:
        """Run these steps (run-time config ``values``) to completion and load what they left."""
        execution_id = await self.start(steps, values=values, **spec)
        with anyio.fail_after(WAIT_SECONDS):
            await self.executor.join(execution_id)
        return await self.load(execution_id)

    async def load(self, execution_id: str) -> Finished:
        async with self.platform.db.session() as session:
            row = await session.get(ExecutionRow, execution_id)
            assert row is not None
            steps = await executions.steps_of(session, execution_id)
            lines = await session.scalars(
                select(LogLineRow).where(LogLineRow.execution_id == execution_id).order_by(LogLineRow.seq)
            )
            return Finished(row, steps, list(lines))

    async def status(self, execution_id: str) -> str:
        async with self.platform.db.session() as session:
            status = await session.scalar(select(ExecutionRow.status).where(ExecutionRow.id == execution_id))
        assert status is not None
        return status

    async def wait_status(self, execution_id: str, statuses: frozenset[str] = TERMINAL) -> str:
        """Wait on the platform's events until the execution reaches one of ``statuses``."""
        with anyio.fail_after(WAIT_SECONDS):
            while True:
                seen = self.platform.events.snapshot([execution_id])
                status = await self.status(execution_id)
                if status in statuses:
                    return status
                await self.platform.events.wait_any(seen, timeout=5)

    async def wait_for_line(self, execution_id: str, needle: str) -> str:
        """Follow the live log until a line containing ``needle`` appears; that line."""
        with anyio.fail_after(WAIT_SECONDS):
            async with contextlib.aclosing(follow(self.platform, execution_id)) as lines:
                async for line in lines:
                    if needle in line.text:
                        return line.text
        raise AssertionError(f"the execution finished without logging {needle!r}")


@pytest.fixture
async def executor(platform: Platform) -> AsyncIterator[LocalExecutor]:
    runner = LocalExecutor(platform)
    await runner.start()
    platform.executor = runner
    yield runner
    await runner.close()


@pytest.fixture
def runner(platform: Platform, executor: LocalExecutor) -> Harness:
    return Harness(platform, executor)

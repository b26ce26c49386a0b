"""The default executor: executions run as local subprocesses of this server, a bounded number at a time.

Submitted executions are claimed in the store (``runner_id``) and wait in memory for one of
``settings.runner.concurrency`` slots; a heartbeat vouches for every execution held here, so another
process reconciling the same database leaves them alone, and picks up aborts other processes requested.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog

from testgate.errors import RunnerError
from testgate.platform import executions
from testgate.platform.context import Platform
from testgate.runner import state
from testgate.runner.job import Job
from testgate.runner.reconcile import new_runner_id, reconcile, remove_leftover_workspaces
from testgate.store.db import UNREACHABLE

log = structlog.get_logger("testgate.runner")

ABORTED = "aborted on request"
SHUTDOWN = "aborted: the server is shutting down"


class LocalExecutor:
    """Runs executions in this process; implements ``testgate.runner.base.Executor``."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.runner_id = new_runner_id()
        self._slots = asyncio.Semaphore(platform.settings.runner.concurrency)
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._accepting = False

    @property
    def held(self) -> list[str]:
        """Ids of the executions queued or running here."""
        return list(self._jobs)

    async def start(self) -> None:
        """Fail the executions a stopped process left behind, then accept work."""
        if self._heartbeat is not None:
            return
        await reconcile(self.platform)
        await remove_leftover_workspaces(self.platform)
        self._accepting = True
        self._heartbeat = asyncio.create_task(self._beat(), name="testgate-runner-heartbeat")

    async def submit(self, execution_id: str, secrets: Mapping[str, str]) -> None:
        """Queue a created execution; it runs when a slot frees up."""
        if not self._accepting:
            raise RunnerError("the executor is not accepting executions (not started, or closing)")
        if execution_id in self._jobs:
            raise RunnerError(f"execution {execution_id!r} was already submitted")
        if not await state.claim(self.platform, execution_id, self.runner_id):
            raise RunnerError(f"execution {execution_id!r} is not queued")
        job = Job(self.platform, execution_id, secrets, self.runner_id)
        self._jobs[execution_id] = job
        self._tasks[execution_id] = asyncio.create_task(self._run(job), name=f"execution-{execution_id}")

    async def _run(self, job: Job) -> None:
        try:
            async with self._slots:
                await job.run()
        finally:
            self._forget(job.execution_id)

    def _forget(self, execution_id: str) -> None:
        self._jobs.pop(execution_id, None)
        self._tasks.pop(execution_id, None)

    async def join(self, execution_id: str) -> None:
        """Wait until an execution held here finished and its workspace is gone (a CLI run exits then)."""
        task = self._tasks.get(execution_id)
        if task is not None:
            await asyncio.wait({task})

    async def abort(self, execution_id: str) -> bool:
        """Stop an execution held here and wait until it is recorded as aborted; False if unknown here."""
        return await self._abort(execution_id, ABORTED)

    async def _abort(self, execution_id: str, reason: str) -> bool:
        job, task = self._jobs.get(execution_id), self._tasks.get(execution_id)
        if job is None or task is None:
            return False
        if job.started:
            job.request_abort(reason)
        else:
            # Still waiting for a slot: nothing runs yet, so dropping it from the queue is enough.
            task.cancel()
            self._forget(execution_id)
            await self._mark_queued_aborted(execution_id, reason)
        await asyncio.wait({task})  # not cancelled if our caller is
        return True

    async def _mark_queued_aborted(self, execution_id: str, reason: str) -> None:
        async with self.platform.db.session() as session:
            await executions.mark_aborted(session, execution_id, reason)
        await self.platform.events.notify(execution_id)

    async def close(self) -> None:
        """Stop accepting work, abort what is queued or running here, wait for it to be recorded."""
        self._accepting = False
        await asyncio.gather(*(self._abort(i, SHUTDOWN) for i in list(self._jobs)))
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait({self._heartbeat})
            self._heartbeat = None

    async def _beat(self) -> None:
        interval = self.platform.settings.runner.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            if not self._jobs:
                continue
            try:
                aborts = await state.heartbeat(self.platform, list(self._jobs))
            except UNREACHABLE:
                # A busy or briefly unreachable store: the next beat tries again.
                log.warning("runner heartbeat failed", runner_id=self.runner_id, exc_info=True)
                continue
            for execution_id in aborts:
                # Asked through the store by another process (a server, while this CLI runs it).
                job = self._jobs.get(execution_id)
                if job is not None and job.started:
                    job.request_abort(ABORTED)
